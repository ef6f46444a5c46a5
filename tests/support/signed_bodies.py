"""Vendor bodies signed as the vendors sign them (Testpress's hash, Inspera's HMAC), for the authenticators and the ingress."""

import hashlib
import hmac
import json

from ingress.auth import (
    signed_message,
)

DEMO_PUBLIC = "DemoPub9Key42abc"


DEMO_PRIVATE = "demoPrivKey7788"


DEMO_VALUES = (DEMO_PUBLIC, "4512", "31", "12", "7", "62.00", "87.50", "918")


DEMO_MESSAGE = b"DemoPub9Key42abc|4512|31|demoPrivKey7788|12|7|62.00|87.50|918"


def sha512_hex(private_key: str, message: bytes) -> str:
    return hmac.new(private_key.encode(), message, hashlib.sha512).hexdigest()


def signed_testpress_body(
    fields: dict[str, object], private_key: str, *, percent_encode: bool = False
) -> bytes:
    """A Testpress body with its hash computed over the values as they appear in the JSON."""

    def as_sent(name: str) -> str:
        value = fields[name]
        return value if isinstance(value, str) else json.dumps(value)

    names = (
        "key",
        "attempt_id",
        "correct_answers_count",
        "incorrect_answers_count",
        "unanswered_answers_count",
        "percentage",
        "score",
        "user_id",
    )
    message = signed_message(tuple(as_sent(n) for n in names), private_key, percent_encode=percent_encode)
    return json.dumps({**fields, "hash": sha512_hex(private_key, message)}).encode()


# The seed's "End Exam Webhook Response" with an invented candidate; its key and hash are replaced.
TESTPRESS_COMPLETED: dict[str, object] = {
    "username": "ada.example",
    "accuracy": 0,
    "exam": {
        "id": 27,
        "title": "File type exam",
        "duration": None,
        "start_date": "2023-03-15T12:04:32+05:30",
    },
    "subject_stats": [{"subject_name": "Quantitative", "correct_answers_count": 0, "score": "0.00"}],
    "email": "ada@example.com",
    "partial_correct_answers_count": 0,
    "attempt_id": 130,
    "attempt_state": "completed",
    "incorrect_answers_count": 0,
    "difficulty_level_stats": {"uncategorized": {"correct_answers_count": 0, "total_count": 1}},
    "completed_on": "2023-03-31T16:27:41.151586+05:30",
    "unanswered_answers_count": 1,
    "key": DEMO_PUBLIC,
    "attempt_start_time": "2023-03-31T10:55:54.968829Z",
    "user_id": 2,
    "percentage": "0.00",
    "score": "0.00",
    "speed": 0,
    "institute_attempt_id": None,
    "correct_answers_count": 0,
}


# The seed's Inspera example event.
INSPERA_EVENT = (
    b'{\n  "event": "qti_export_ready",\n  "marketplaceId": 1357554,\n  "contextObjectId": 74379551,\n'
    b'  "contextObjectType": "QUESTION_SET",\n  "timestamp": "2021-06-29T18:16:06Z"\n}'
)


INSPERA_PING = (
    b"{contextObjectId=0, contextObjectTitle=2f1c5a3e-3d4b-4c1e-9a55-0e7d1c2b3a4f,"
    b" event=verification, timestamp=2024-05-02T10:00:00Z}"
)


def inspera_headers(body: bytes, secret: str = "inspera-secret") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Inspera-Signature": hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
    }
