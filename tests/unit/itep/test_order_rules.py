"""iTEP orders without I/O: every validation rule with iTEP's own error text, the request body as
iTEP documents it, its signature, and the lenient reading of iTEP's (unpublished) answer."""

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from common.itep.orders import OrderRow
from common.itep.validation import problems, registration_to_send
from schemas.itep_order import OrderRequest
from tests.support.paths import ROOT
from workers.fulfillment import request
from workers.fulfillment.call import Kind, classify
from workers.fulfillment.response import read_answer
from workers.fulfillment.settings import FulfillmentSettings


def order(**changes: Any) -> OrderRequest:
    fields: dict[str, Any] = {
        "reference": "crm-1001",
        "product_code": "GTX-Academic-Plus",
        "registration": {"First_Name": "Mary", "Last_Name": "Example"},
    }
    fields.update(changes)
    return OrderRequest(**fields)


def reg(**fields: str | int) -> OrderRequest:
    return order(registration=fields)


def test_a_plain_order_has_no_problems() -> None:
    assert problems(order()) == []
    assert problems(order(product_code="STX-Academic-Plus", email="mary@example.com")) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"DOB_Month": 13}, "Out of range Birth Month [13]"),
        ({"DOB_Month": 0}, "Out of range Birth Month [0]"),
        ({"DOB_Month": "x"}, "Out of range Birth Month [x]"),
        ({"DOB_Day": 32}, "Out of range Birth Day [32]"),
        ({"DOB_Day": "0"}, "Out of range Birth Day [0]"),
        ({"DOB_Year": 1900}, "Out of range Birth Year [1900]"),
        ({"DOB_Year": "19x0"}, "Out of range Birth Year [19x0]"),
        ({"Birthday": "7/8"}, "Unable to parse Birth Date [7/8]"),
        ({"Birthday": "July 8, 1955"}, "Unable to parse Birth Date [July 8, 1955]"),
        ({"Birthday": "13/8/1955"}, "Out of range Birth Month [13]"),
        ({"Birthday": "7/32/1955"}, "Out of range Birth Day [32]"),
        ({"Birthday": "8-13-1955"}, "Out of range Birth Month [13]"),  # D-M-YYYY
        ({"Birthday": "7/8/1899"}, "Out of range Birth Year [1899]"),
        ({"Gender": "other"}, "Invalid Gender [other]"),
        ({"Education": "College"}, "Invalid Education [College]"),
        # iTEP's own example sends "Biology", which its list does not have.
        ({"Field_Of_Study": "Biology"}, "Invalid Study Field [Biology]"),
        ({"Favourite_Colour": "blue"}, "Unknown registration field [Favourite_Colour]"),
        (
            {"last_name": "Example"},
            "Unknown registration field [last_name] (field names are case-sensitive: Last_Name)",
        ),
        (
            {"trExternal_ID": "mine"},
            "Registration field [trExternal_ID] is set by resultbus (to the order id)",
        ),
    ],
)
def test_each_registration_rule_with_itep_text(fields: dict[str, str | int], expected: str) -> None:
    assert problems(reg(**fields)) == [expected]


@pytest.mark.parametrize(
    "fields",
    [
        {"DOB_Month": 1, "DOB_Day": 31, "DOB_Year": 1901},
        {"DOB_Month": "12", "DOB_Day": "1", "DOB_Year": "2004"},
        {"Birthday": "7/8/1955"},
        {"Birthday": "12/31/2001"},
        {"Birthday": "31-12-2001"},  # D-M-YYYY
        {"Birthday": "1955-07-08"},  # ISO, as in iTEP's own example
        {"Gender": "female"},
        {"Gender": "MALE"},
        {"Education": "bachelor's degree"},
        {"Field_Of_Study": "other languages"},
        {"OIN": "123-456-7890", "trStudent_Number": "S-1"},
    ],
)
def test_values_inside_the_rules_pass(fields: dict[str, str | int]) -> None:
    assert problems(reg(**fields)) == []


def test_every_problem_is_listed() -> None:
    found = problems(
        order(
            product_code="STX-Academic-Plus",
            registration={"DOB_Month": 13, "Gender": "x", "Birthday": "1/2", "Nick": "m"},
            assigned_to={"resultbus-order-id": "mine"},
        )
    )
    assert found == [
        "Email required for product code [STX-Academic-Plus]: iTEP sends the test ID to it",
        "Out of range Birth Month [13]",
        "Invalid Gender [x]",
        "Unable to parse Birth Date [1/2]",
        "Unknown registration field [Nick]",
        "Assigned-to field [resultbus-order-id] is set by resultbus (to the order id)",
    ]


@pytest.mark.parametrize(
    "code", ["QSG-Academic-Plus", "gtx-Academic-Plus", "GTX-", "Academic-Plus", " GTX-A"]
)
def test_only_gtx_and_stx_codes_are_api_orders(code: str) -> None:
    [problem] = problems(order(product_code=code))
    assert problem.startswith(f"Invalid product code [{code}]")


def test_stx_needs_an_email_gtx_does_not() -> None:
    assert problems(order(product_code="GTX-Business-Core")) == []
    assert problems(order(product_code="STX-Business-Core", email="   a@b")) == []
    assert problems(order(product_code="STX-Business-Core"))[0].startswith("Email required")


def test_an_iso_birthday_is_sent_in_the_documented_form() -> None:
    assert registration_to_send({"Birthday": "1955-07-08"}, "o-1") == {
        "Birthday": "7/8/1955",
        "trExternal_ID": "o-1",
    }
    assert registration_to_send({"Birthday": "8-7-1955"}, "o-1")["Birthday"] == "8-7-1955"


SETTINGS = FulfillmentSettings(
    endpoint="http://127.0.0.1:1/",
    api_key="test-api-key",
    track="RC",
    gtx_header="X-Gtx",
    stx_header="X-Stx",
)


def stored(req: OrderRequest, order_id: str = "0b9f8d2e-6f51-4f5e-9d53-3a3c1a3f0c11") -> OrderRow:
    now = datetime.now(UTC)
    return OrderRow(
        id=order_id,
        reference=req.reference,
        product_code=req.product_code,
        request=req,
        status="ordered",
        problems=[],
        test_id=None,
        attempts=0,
        last_error=None,
        response_status=None,
        response_body=None,
        response=None,
        created_at=now,
        updated_at=now,
    )


def test_the_body_is_compact_json_with_track_and_the_order_id_twice() -> None:
    req = order(
        product_code="STX-Academic-Plus",
        email="mary@example.com",
        bcc="office@example.com",
        assigned_to={"student-name": "Mary Example", "customer-candidate-id": 9810283},
        registration={"Last_Name": "Example", "Birthday": "1955-07-08"},
    )
    row = stored(req)
    data = request.body(row, "RC")
    assert b" " not in data.replace(b"Mary Example", b"")  # no whitespace outside values
    assert b"\n" not in data
    assert json.loads(data) == {
        "product-code": "STX-Academic-Plus",
        "email": "mary@example.com",
        "bcc": "office@example.com",
        "track": "RC",
        "assigned-to": {
            "student-name": "Mary Example",
            "customer-candidate-id": 9810283,
            "resultbus-order-id": row.id,
        },
        "registration": {"Last_Name": "Example", "Birthday": "7/8/1955", "trExternal_ID": row.id},
    }
    assert list(json.loads(data)) == ["product-code", "email", "bcc", "track", "assigned-to", "registration"]


def test_the_signature_is_hmac_sha256_of_the_exact_bytes_in_the_groups_header() -> None:
    data = request.body(stored(order()), "RC")
    expected = hmac.new(b"test-api-key", data, hashlib.sha256).hexdigest()
    assert request.headers("GTX-Academic-Plus", data, SETTINGS) == {
        "Content-Type": "application/json",
        "X-Gtx": expected,
    }
    assert request.headers("STX-Academic-Plus", data, SETTINGS)["X-Stx"] == expected
    b64 = request.signature(data, "test-api-key", "base64")
    assert b64 == __import__("base64").b64encode(bytes.fromhex(expected)).decode()
    assert request.signature(data + b" ", "test-api-key", "hex") != expected


@pytest.mark.parametrize(
    ("status", "raw", "kind", "test_id"),
    [
        (200, '{"status":"success","TestID":"123982B8AP","Password":"64778"}', Kind.ASSIGNED, "123982B8AP"),
        (200, '{"data":{"test_id":"124027B8AP"}}', Kind.ASSIGNED, "124027B8AP"),
        (200, "124030B7AP\n", Kind.ASSIGNED, "124030B7AP"),
        (200, '{"status":"error","error":"Out of range Birth Month [13]"}', Kind.REFUSED, None),
        (200, "Invalid Gender [x]", Kind.REFUSED, None),
        (200, '{"status":"failed","message":"No available test IDs"}', Kind.REFUSED, None),
        (401, "Bad signature", Kind.REFUSED, None),
        (404, "<html>Not Found</html>", Kind.REFUSED, None),
        (503, "Service Unavailable", Kind.RETRY, None),
        (500, '{"error":"database"}', Kind.RETRY, None),
        (429, "", Kind.RETRY, None),
        (200, "", Kind.UNCONFIRMED, None),
        (200, '{"ok":true}', Kind.UNCONFIRMED, None),
        (200, "<html>thank you</html>", Kind.UNCONFIRMED, None),
    ],
)
def test_answers_are_read_leniently(status: int, raw: str, kind: Kind, test_id: str | None) -> None:
    outcome = classify(status, raw)
    assert (outcome.kind, outcome.test_id) == (kind, test_id)
    assert outcome.raw == raw and outcome.status == status


def test_an_error_text_is_kept_as_itep_wrote_it() -> None:
    assert (
        read_answer(200, '{"error":"Out of range Birth Month [13]"}').error == "Out of range Birth Month [13]"
    )
    assert classify(200, "Invalid Gender [x]").detail == "Invalid Gender [x]"


def test_settings_need_what_itep_does_not_publish() -> None:
    env = {
        "RESULTBUS_ITEP_ENDPOINT": "https://www.iteptest.com/requests/ecommerce_webhook.php",
        "ITEP_API_KEY": "secret-api-key-42",
        "RESULTBUS_ITEP_TRACK": "RC",
        "RESULTBUS_ITEP_SIGNATURE_HEADER_GTX": "X-A",
        "RESULTBUS_ITEP_SIGNATURE_HEADER_STX": "X-B",
    }
    settings = FulfillmentSettings.from_env(env)
    assert (settings.encoding, settings.timeout, settings.track) == ("hex", 30.0, "RC")
    assert settings.api_key == "secret-api-key-42" and "secret-api-key-42" not in repr(settings)
    from common.env import SettingError

    for missing in ("RESULTBUS_ITEP_TRACK", "RESULTBUS_ITEP_SIGNATURE_HEADER_STX", "ITEP_API_KEY"):
        with pytest.raises(SettingError, match=missing):
            FulfillmentSettings.from_env({k: v for k, v in env.items() if k != missing})
    with pytest.raises(SettingError, match="RESULTBUS_ITEP_SIGNATURE_ENCODING"):
        FulfillmentSettings.from_env({**env, "RESULTBUS_ITEP_SIGNATURE_ENCODING": "b32"})


def test_published_order_schema_is_current() -> None:

    from schemas.itep_order import order_request_json_schema

    path = ROOT / "docs" / "itep-order.schema.json"
    assert json.loads(path.read_text()) == order_request_json_schema(), "stale: run `make schema`"
