"""`python -m schemas [event|itep-order]`: prints the JSON Schema of the normalized result event
(the default) or of an iTEP order (the `<prefix>.itep.orders` queue and `POST /v1/itep/orders`)."""

import json
import sys

from schemas.event import event_json_schema
from schemas.itep_order import order_request_json_schema

_SCHEMAS = {"event": event_json_schema, "itep-order": order_request_json_schema}

which = sys.argv[1] if len(sys.argv) > 1 else "event"
if which not in _SCHEMAS:
    sys.exit(f"usage: python -m schemas [{'|'.join(_SCHEMAS)}]")
print(json.dumps(_SCHEMAS[which](), indent=2, sort_keys=True))
