"""The call to iTEP's fulfillment API, as its page describes it: a compact JSON body (no whitespace)
signed with HMAC-SHA256 of its exact bytes, keyed with the API key, in a header whose name tells GTX
from STX calls. Pure: building and signing are tested without I/O."""

import base64
import hashlib
import hmac
from typing import Any

import msgspec

from common.itep.orders import OrderRow
from common.itep.validation import STX, registration_to_send
from schemas.itep_order import ASSIGNED_TO_ORDER_KEY
from workers.fulfillment.settings import Encoding, FulfillmentSettings

_json = msgspec.json.Encoder()


def body(order: OrderRow, track: str) -> bytes:
    """iTEP's request body for `order`, in the order of iTEP's example; msgspec writes no whitespace.
    The order id goes twice: as `trExternal_ID` (iTEP returns it as `OID` with every result) and in
    `assigned-to` (shown beside the test ID in iTEP's admin pages, where an operator can look for it)."""
    request = order.request
    out: dict[str, Any] = {"product-code": request.product_code}
    if request.email is not None:
        out["email"] = request.email
    if request.bcc is not None:
        out["bcc"] = request.bcc
    out["track"] = track
    out["assigned-to"] = {**request.assigned_to, ASSIGNED_TO_ORDER_KEY: order.id}
    out["registration"] = registration_to_send(request.registration, order.id)
    return _json.encode(out)


def signature(data: bytes, key: str, encoding: Encoding) -> str:
    digest = hmac.new(key.encode(), data, hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def headers(product_code: str, data: bytes, settings: FulfillmentSettings) -> dict[str, str]:
    name = settings.stx_header if product_code.startswith(STX) else settings.gtx_header
    return {
        "Content-Type": "application/json",
        name: signature(data, settings.api_key, settings.encoding),
    }
