"""`python -m schemas`: prints the JSON Schema of the normalized result event."""

import json

from schemas.event import event_json_schema

print(json.dumps(event_json_schema(), indent=2, sort_keys=True))
