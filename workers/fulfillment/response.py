"""Reading iTEP's answer. Its format is not public, so the reading is lenient and the raw answer is
always kept: a JSON object is searched for a test ID (`TestID`, `test_id`, `test-id`, `testid`, any
case) and for an error (`error`, `errors`, `message` beside a failing `status`, …); a plain-text
answer is a test ID when it is one token that looks like one (iTEP's are like `123982B8AP`), and an
error when it reads like one of iTEP's error texts. Pure."""

import re
from typing import Any, Final

import msgspec

MAX_KEPT: Final = 65536  # characters of the raw answer kept with the order

_TEST_ID_TOKEN = re.compile(r"[A-Za-z0-9]*[0-9][A-Za-z0-9]*")
_TEST_ID_KEYS = frozenset({"testid", "testidnumber"})
_ERROR_KEYS = frozenset({"error", "errors", "errormessage", "err"})
_ERROR_WORDS = re.compile(
    r"out of range|invalid|unable|error|fail|not found|no available|denied|unauthori[sz]ed|required",
    re.IGNORECASE,
)
_any = msgspec.json.Decoder()


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    test_id: str | None = None
    error: str | None = None
    parsed: Any = None  # the JSON answer, when it was JSON


def _key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and value:
        parts = [t for v in value if (t := _text(v))]
        return "; ".join(parts) or None
    if isinstance(value, dict):
        return _text(list(value.values()))
    return None


def _find(obj: dict[str, Any], keys: frozenset[str], depth: int = 0) -> str | None:
    for name, value in obj.items():
        if _key(name) in keys and (found := _text(value)):
            return found
    if depth < 2:
        for value in obj.values():
            if isinstance(value, dict) and (found := _find(value, keys, depth + 1)):
                return found
    return None


def read_answer(status: int, raw: str) -> Answer:
    text = raw.strip()
    try:
        parsed = _any.decode(text) if text[:1] in ("{", "[") else None
    except msgspec.DecodeError:
        parsed = None
    if isinstance(parsed, dict):
        test_id = _find(parsed, _TEST_ID_KEYS)
        if test_id is not None and not _TEST_ID_TOKEN.fullmatch(test_id):
            test_id = None
        error = _find(parsed, _ERROR_KEYS)
        if error is None and test_id is None:
            state = _text(parsed.get("status")) or ""
            if re.search(r"fail|error", state, re.IGNORECASE):
                error = _text(parsed.get("message")) or state
        return Answer(test_id=None if error else test_id, error=error, parsed=parsed)
    if parsed is not None:
        return Answer(parsed=parsed, error=None)
    if 200 <= status < 300 and _TEST_ID_TOKEN.fullmatch(text) and 6 <= len(text) <= 32:
        return Answer(test_id=text)
    if text and _ERROR_WORDS.search(text):
        return Answer(error=text[:2000])
    return Answer()
