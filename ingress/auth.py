"""One authenticator per kind of source authentication. Pure: no I/O, no logging.

Each `check(headers, body)` returns on success and raises `AuthError` (or `MalformedBody` when the
body is too broken to even find what authentication needs). Every comparison of a secret-derived
value is constant-time, and every rotated secret is tried, so timing tells nothing about which one
(or which part) failed.
"""

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import quote

import msgspec

from ingress.errors import AuthError, MalformedBody
from schemas.testpress import TestpressSigned


class SecretSet:
    """Secret values resolved from environment variables; several values mean rotation.

    Its repr names the variables and never the values, so a config object can be logged safely.
    """

    __slots__ = ("_names", "_values")

    def __init__(self, names: tuple[str, ...], values: tuple[bytes, ...]) -> None:
        if len(names) != len(values) or not values:
            raise ValueError("one value per environment variable, at least one")
        self._names = names
        self._values = values

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def values(self) -> tuple[bytes, ...]:
        return self._values

    def __repr__(self) -> str:
        return f"SecretSet(env={list(self._names)!r}, values=<hidden>)"

    __str__ = __repr__


class Authenticator(Protocol):
    def check(self, headers: Mapping[str, str], body: bytes) -> None: ...


def _matches_any(given: bytes, expected: tuple[bytes, ...]) -> bool:
    # No early exit: every rotated secret costs the same whether an earlier one matched or not.
    ok = False
    for candidate in expected:
        ok |= hmac.compare_digest(given, candidate)
    return ok


def _header_bytes(value: str) -> bytes:
    # aiohttp decodes header bytes it cannot read as UTF-8 with surrogateescape; undo that exactly.
    # A lone surrogate from JSON ("\ud800") has no such bytes: encoded as is, it matches no secret.
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


class NoAuth:
    """Synap without basic auth: the URL itself (and an optional IP allowlist) is the only guard."""

    __slots__ = ()

    def check(self, headers: Mapping[str, str], body: bytes) -> None:
        return None

    def __repr__(self) -> str:
        return "NoAuth()"


class BasicAuth:
    __slots__ = ("_passwords", "_username")

    def __init__(self, username: str, passwords: SecretSet) -> None:
        self._username = username.encode()
        self._passwords = passwords

    def check(self, headers: Mapping[str, str], body: bytes) -> None:
        value = headers.get("Authorization")
        if value is None:
            raise AuthError("no Authorization header")
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "basic":
            raise AuthError("Authorization is not Basic")
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise AuthError("Basic credentials are not base64") from None
        user, sep, password = decoded.partition(b":")
        if not sep:
            raise AuthError("Basic credentials have no ':'")
        user_ok = hmac.compare_digest(user, self._username)
        password_ok = _matches_any(password, self._passwords.values)
        if not (user_ok and password_ok):
            raise AuthError("wrong Basic credentials")

    def __repr__(self) -> str:
        return f"BasicAuth(username={self._username.decode()!r}, passwords={self._passwords!r})"


class HeaderTokenAuth:
    __slots__ = ("_header", "_tokens")

    def __init__(self, header: str, tokens: SecretSet) -> None:
        self._header = header
        self._tokens = tokens

    def check(self, headers: Mapping[str, str], body: bytes) -> None:
        value = headers.get(self._header)
        if value is None:
            raise AuthError(f"no {self._header} header")
        if not _matches_any(_header_bytes(value.strip()), self._tokens.values):
            raise AuthError(f"wrong {self._header} token")

    def __repr__(self) -> str:
        return f"HeaderTokenAuth(header={self._header!r}, tokens={self._tokens!r})"


INSPERA_SIGNATURE_HEADER = "X-Inspera-Signature"


def _keyed(secrets: SecretSet, digest: str) -> tuple["hmac.HMAC", ...]:
    """One HMAC state per secret with its key already absorbed: a copy of it per message is a third
    of the cost of keying a new one (the key's padding and two hash blocks, every request)."""
    return tuple(hmac.new(secret, digestmod=digest) for secret in secrets.values)


def _hex_mac(keyed: "hmac.HMAC", message: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(message)
    return mac.hexdigest().encode()


class InsperaSignatureAuth:
    """`X-Inspera-Signature`: hex HMAC-SHA1 of the raw body keyed with the subscription's secret."""

    __slots__ = ("_keyed", "_secrets")

    def __init__(self, secrets: SecretSet) -> None:
        self._secrets = secrets
        self._keyed = _keyed(secrets, "sha1")

    def check(self, headers: Mapping[str, str], body: bytes) -> None:
        value = headers.get(INSPERA_SIGNATURE_HEADER)
        if value is None:
            raise AuthError(f"no {INSPERA_SIGNATURE_HEADER} header")
        # Lowercase hex is documented; upper case costs nothing to accept.
        given = _header_bytes(value.strip().lower())
        expected = tuple(_hex_mac(keyed, body) for keyed in self._keyed)
        if not _matches_any(given, expected):
            raise AuthError("wrong Inspera signature")

    def __repr__(self) -> str:
        return f"InsperaSignatureAuth(secrets={self._secrets!r})"


_testpress_decoder = msgspec.json.Decoder(TestpressSigned)
_string_decoder = msgspec.json.Decoder(str)


def _as_sent(raw: msgspec.Raw, field: str) -> str:
    text = bytes(raw)
    first = text[:1]
    if first == b'"':
        # A Raw field is only checked for its JSON shape: its text (invalid UTF-8, a lone surrogate
        # escape) is read here, and a string that cannot be read is the sender's fault, a 400.
        try:
            value = _string_decoder.decode(text)
            value.encode()
        except (msgspec.DecodeError, UnicodeError):
            raise MalformedBody(f"Testpress field {field!r} is not valid UTF-8 text") from None
        return value
    if first in b"-0123456789" and first:
        return text.decode("ascii")
    # null, true/false, an object or an array: nothing the vendor's hash could have been made from.
    raise MalformedBody(f"Testpress field {field!r} is not a string or a number")


def signed_message(values: tuple[str, ...], private_key: str, *, percent_encode: bool) -> bytes:
    """The signed message: key|attempt_id|correct|PRIVATE_KEY|incorrect|unanswered|percentage|score|user_id.

    `values` are the eight body values in that order without the private key.
    """
    parts = (*values[:3], private_key, *values[3:])
    if percent_encode:
        parts = tuple(quote(part, safe="") for part in parts)
    return "|".join(parts).encode()


class TestpressHashAuth:
    """The body's `hash`: hex HMAC-SHA512, keyed with the private key, of the pipe-joined values.

    One version of the vendor's page percent-encodes the values before joining and another does not;
    for the characters Testpress sends both agree, and where they differ either is accepted.
    """

    __test__ = False  # not a pytest class, whatever its name says
    __slots__ = ("_keyed", "_private_keys", "_public_key")

    def __init__(self, private_keys: SecretSet, public_key: str | None = None) -> None:
        self._private_keys = private_keys
        self._keyed = _keyed(private_keys, "sha512")
        self._public_key = None if public_key is None else public_key.encode()

    def check(self, headers: Mapping[str, str], body: bytes) -> None:
        try:
            signed = _testpress_decoder.decode(body)
        except msgspec.DecodeError as exc:
            # ValidationError is a DecodeError: not JSON, not an object, or a field missing.
            raise MalformedBody(f"Testpress body: {exc}") from None
        except RecursionError:
            raise MalformedBody("Testpress body: nested too deeply") from None
        values = (
            _as_sent(signed.key, "key"),
            _as_sent(signed.attempt_id, "attempt_id"),
            _as_sent(signed.correct_answers_count, "correct_answers_count"),
            _as_sent(signed.incorrect_answers_count, "incorrect_answers_count"),
            _as_sent(signed.unanswered_answers_count, "unanswered_answers_count"),
            _as_sent(signed.percentage, "percentage"),
            _as_sent(signed.score, "score"),
            _as_sent(signed.user_id, "user_id"),
        )
        given = _header_bytes(_as_sent(signed.hash, "hash").strip().lower())
        public_key_ok = self._public_key is None or hmac.compare_digest(
            _header_bytes(values[0]), self._public_key
        )
        expected: list[bytes] = []
        for secret, keyed in zip(self._private_keys.values, self._keyed, strict=True):
            private_key = secret.decode("utf-8", "surrogateescape")
            plain = signed_message(values, private_key, percent_encode=False)
            encoded = signed_message(values, private_key, percent_encode=True)
            for message in (plain, encoded) if encoded != plain else (plain,):
                expected.append(_hex_mac(keyed, message))
        hash_ok = _matches_any(given, tuple(expected))
        if not (public_key_ok and hash_ok):
            raise AuthError("wrong Testpress key or hash")

    def __repr__(self) -> str:
        public = None if self._public_key is None else self._public_key.decode()
        return f"TestpressHashAuth(public_key={public!r}, private_keys={self._private_keys!r})"
