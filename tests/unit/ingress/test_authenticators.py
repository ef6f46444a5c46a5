"""Authenticators, without I/O: each kind refuses a missing or wrong credential, accepts the right
one and any rotated one, and never shows a secret in its repr."""

import base64
import hashlib
import hmac
import json
from urllib.parse import quote

import pytest
from multidict import CIMultiDict

from ingress.auth import (
    BasicAuth,
    HeaderTokenAuth,
    InsperaSignatureAuth,
    NoAuth,
    SecretSet,
    TestpressHashAuth,
    signed_message,
)
from ingress.errors import AuthError, MalformedBody
from tests.support.signed_bodies import (
    DEMO_MESSAGE,
    DEMO_PRIVATE,
    DEMO_PUBLIC,
    DEMO_VALUES,
    TESTPRESS_COMPLETED,
    sha512_hex,
    signed_testpress_body,
)


def secrets(*values: str) -> SecretSet:
    return SecretSet(tuple(f"ENV_{i}" for i in range(len(values))), tuple(v.encode() for v in values))


def headers(**items: str) -> CIMultiDict[str]:
    return CIMultiDict({name.replace("_", "-"): value for name, value in items.items()})


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- basic ---------------------------------------------------------------------------------------

BASIC = BasicAuth("itep", secrets("old-pass-1", "new-pass-2"))


@pytest.mark.parametrize(
    "value",
    [
        None,
        "Bearer abc",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        basic("itep", "wrong"),
        basic("someone-else", "old-pass-1"),
        basic("itep", ""),
    ],
)
def test_basic_refuses(value: str | None) -> None:
    h = headers() if value is None else headers(Authorization=value)
    with pytest.raises(AuthError):
        BASIC.check(h, b"")


@pytest.mark.parametrize("password", ["old-pass-1", "new-pass-2"])
def test_basic_accepts_every_rotated_password(password: str) -> None:
    BASIC.check(headers(Authorization=basic("itep", password)), b"")


def test_basic_scheme_is_case_insensitive_and_password_may_hold_colons() -> None:
    auth = BasicAuth("u", secrets("a:b:c"))
    auth.check(headers(authorization="basic " + base64.b64encode(b"u:a:b:c").decode()), b"")


# --- header token --------------------------------------------------------------------------------

TOKEN = HeaderTokenAuth("X-Api-Token", secrets("tok-one", "tok-two"))


@pytest.mark.parametrize("value", [None, "", "tok-on", "tok-one-and-more", "TOK-ONE"])
def test_header_token_refuses(value: str | None) -> None:
    h = headers() if value is None else headers(X_Api_Token=value)
    with pytest.raises(AuthError):
        TOKEN.check(h, b"")


@pytest.mark.parametrize("value", ["tok-one", "tok-two"])
def test_header_token_accepts_rotated_tokens_under_any_header_case(value: str) -> None:
    TOKEN.check(headers(x_api_token=value), b"")


# --- Inspera -------------------------------------------------------------------------------------

INSPERA_BODY = (
    b'{"event": "qti_export_ready", "marketplaceId": 1357554, "contextObjectId": 74379551,'
    b' "contextObjectType": "QUESTION_SET", "timestamp": "2021-06-29T18:16:06Z"}'
)
INSPERA = InsperaSignatureAuth(secrets("insp-secret-a", "insp-secret-b"))


def inspera_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def test_inspera_refuses_missing_and_wrong_signatures() -> None:
    with pytest.raises(AuthError):
        INSPERA.check(headers(), INSPERA_BODY)
    with pytest.raises(AuthError):
        INSPERA.check(headers(X_Inspera_Signature=inspera_signature("other", INSPERA_BODY)), INSPERA_BODY)
    # A signature of another body: the body was changed on the way.
    signed_other = inspera_signature("insp-secret-a", INSPERA_BODY + b" ")
    with pytest.raises(AuthError):
        INSPERA.check(headers(X_Inspera_Signature=signed_other), INSPERA_BODY)


@pytest.mark.parametrize("secret", ["insp-secret-a", "insp-secret-b"])
def test_inspera_accepts_rotated_secrets_in_either_hex_case(secret: str) -> None:
    signature = inspera_signature(secret, INSPERA_BODY)
    INSPERA.check(headers(X_Inspera_Signature=signature), INSPERA_BODY)
    INSPERA.check(headers(x_inspera_signature=signature.upper()), INSPERA_BODY)


# --- Testpress -----------------------------------------------------------------------------------


TESTPRESS = TestpressHashAuth(secrets("retired-key", DEMO_PRIVATE))


def test_testpress_worked_example_message_and_hash() -> None:
    assert signed_message(DEMO_VALUES, DEMO_PRIVATE, percent_encode=False) == DEMO_MESSAGE
    body = (
        b'{"key": "DemoPub9Key42abc", "attempt_id": 4512, "correct_answers_count": 31,'
        b' "incorrect_answers_count": 12, "unanswered_answers_count": 7, "percentage": "62.00",'
        b' "score": "87.50", "user_id": 918, "attempt_state": "completed",'
        b' "hash": "' + sha512_hex(DEMO_PRIVATE, DEMO_MESSAGE).encode() + b'"}'
    )
    TESTPRESS.check(headers(), body)
    # A number sent as a string, or a string sent as a number, is the same text: same message.
    TESTPRESS.check(headers(), body.replace(b'"correct_answers_count": 31', b'"correct_answers_count": "31"'))
    TESTPRESS.check(headers(), body.replace(b'"percentage": "62.00"', b'"percentage": 62.00'))
    # But the literal text counts: 62.0 is not 62.00.
    with pytest.raises(AuthError):
        TESTPRESS.check(headers(), body.replace(b'"percentage": "62.00"', b'"percentage": 62.0'))


def test_testpress_seed_sample_with_recomputed_hash() -> None:
    TESTPRESS.check(headers(), signed_testpress_body(TESTPRESS_COMPLETED, DEMO_PRIVATE))
    started = {**TESTPRESS_COMPLETED, "attempt_state": "started", "completed_on": None, "subject_stats": []}
    TESTPRESS.check(headers(), signed_testpress_body(started, "retired-key"))


def test_testpress_accepts_percent_encoded_and_plain_where_they_differ() -> None:
    fields = {**TESTPRESS_COMPLETED, "key": "Pub+Key/with=odd&chars"}
    private = "priv key|7788"
    auth = TestpressHashAuth(secrets(private))
    plain = signed_testpress_body(fields, private)
    encoded = signed_testpress_body(fields, private, percent_encode=True)
    assert plain != encoded
    auth.check(headers(), plain)
    auth.check(headers(), encoded)
    values = ("Pub+Key/with=odd&chars", "130", "0", "0", "1", "0.00", "0.00", "2")
    assert signed_message(values, private, percent_encode=True) == (
        b"Pub%2BKey%2Fwith%3Dodd%26chars|130|0|priv%20key%7C7788|0|1|0.00|0.00|2"
    )
    assert quote("0.00", safe="") == "0.00"  # why the two versions agree for what Testpress sends


def test_testpress_refuses_wrong_hash_tampering_and_wrong_key() -> None:
    body = signed_testpress_body(TESTPRESS_COMPLETED, "some-other-key")
    with pytest.raises(AuthError):
        TESTPRESS.check(headers(), body)
    good = signed_testpress_body(TESTPRESS_COMPLETED, DEMO_PRIVATE)
    with pytest.raises(AuthError):
        TESTPRESS.check(headers(), good.replace(b'"score": "0.00"', b'"score": "99.00"'))
    pinned = TestpressHashAuth(secrets(DEMO_PRIVATE), public_key="AnotherPublicKey")
    with pytest.raises(AuthError):
        pinned.check(headers(), good)
    TestpressHashAuth(secrets(DEMO_PRIVATE), public_key=DEMO_PUBLIC).check(headers(), good)


def test_testpress_lone_surrogate_in_hash_is_refused_not_a_crash() -> None:
    good = signed_testpress_body(TESTPRESS_COMPLETED, DEMO_PRIVATE)
    hash_value = json.loads(good)["hash"]
    with pytest.raises((AuthError, MalformedBody)):
        TESTPRESS.check(headers(), good.replace(hash_value.encode(), b"\\ud800"))


def test_testpress_accepts_upper_case_hash() -> None:
    body = json.loads(signed_testpress_body(TESTPRESS_COMPLETED, DEMO_PRIVATE))
    body["hash"] = body["hash"].upper()
    TESTPRESS.check(headers(), json.dumps(body).encode())


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"a string"',
        json.dumps({k: v for k, v in TESTPRESS_COMPLETED.items() if k != "user_id"} | {"hash": "x"}).encode(),
        json.dumps(TESTPRESS_COMPLETED).encode(),  # no hash at all
        json.dumps({**TESTPRESS_COMPLETED, "hash": "x", "score": None}).encode(),
        json.dumps({**TESTPRESS_COMPLETED, "hash": "x", "attempt_id": {"id": 1}}).encode(),
        json.dumps({**TESTPRESS_COMPLETED, "hash": "x", "percentage": [0]}).encode(),
        json.dumps({**TESTPRESS_COMPLETED, "hash": None}).encode(),
        json.dumps({**TESTPRESS_COMPLETED, "hash": "x", "user_id": True}).encode(),
    ],
)
def test_testpress_malformed_bodies(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        TESTPRESS.check(headers(), body)


# --- no auth, reprs ------------------------------------------------------------------------------


def test_no_auth_accepts_anything() -> None:
    NoAuth().check(headers(), b"anything")


def test_no_secret_in_any_repr() -> None:
    hidden = ("old-pass-1", "new-pass-2", "tok-one", "insp-secret-a", DEMO_PRIVATE, "retired-key")
    for auth in (BASIC, TOKEN, INSPERA, TESTPRESS):
        for text in (repr(auth), str(auth)):
            assert "ENV_0" in text
            assert not any(secret in text for secret in hidden), text


def test_auth_error_carries_no_secret() -> None:
    with pytest.raises(AuthError) as caught:
        BASIC.check(headers(Authorization=basic("itep", "guess-123")), b"")
    assert caught.value.status == 401
    assert "guess-123" not in str(caught.value) and "old-pass-1" not in str(caught.value)
