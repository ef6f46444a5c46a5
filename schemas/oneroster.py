"""Wire types of the OneRoster 1.2 Gradebook service (1EdTech), REST/JSON binding, as resultbus sends
them and as the devkit provider (devkit/oneroster.py) checks them.

Only what a results destination needs: `LineItem` and `Result` (with their `GUIDRef`s), the
single-object bodies of `PUT /lineItems/{sourcedId}` and `PUT /results/{sourcedId}` (`{"lineItem": …}`,
`{"result": …}`), the `GET /results` page (`{"results": […]}`), the `imsx_StatusInfo` error payload,
and the OAuth 2.0 token answer. Field names are the binding's (camelCase); `class` is `class_` here.
"""

from datetime import date, datetime
from enum import StrEnum
from typing import Final

import msgspec

BASE_PATH: Final = "/ims/oneroster/gradebook/v1p2"
ROSTERING_PATH: Final = "/ims/oneroster/rostering/v1p2"
# The scopes of the gradebook service (1EdTech OneRoster 1.2, section "Scopes").
SCOPE_READONLY: Final = "https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.readonly"
SCOPE_CREATEPUT: Final = "https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.createput"
SCOPE_DELETE: Final = "https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.delete"


class RecordStatus(StrEnum):
    ACTIVE = "active"
    TO_BE_DELETED = "tobedeleted"


class ScoreStatus(StrEnum):
    """ScoreStatusEnum of the 1.2 information model (the spelling has spaces)."""

    EXEMPT = "exempt"
    FULLY_GRADED = "fully graded"
    NOT_SUBMITTED = "not submitted"
    PARTIALLY_GRADED = "partially graded"
    SUBMITTED = "submitted"


class GUIDRef(msgspec.Struct, frozen=True, kw_only=True):
    """A reference to another record: its URL, its sourcedId and its type (`lineItem`, `user`,
    `class`, `org`, `category`, `scoreScale`, `academicSession`)."""

    href: str
    sourcedId: str
    type: str


class LineItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename={"class_": "class"}):
    """A column of the gradebook: one per vendor product (see gradebook/oneroster.py)."""

    sourcedId: str
    status: RecordStatus
    dateLastModified: datetime
    title: str
    description: str | None = None
    assignDate: datetime
    dueDate: datetime
    class_: GUIDRef
    school: GUIDRef
    category: GUIDRef
    academicSession: GUIDRef | None = None
    scoreScale: GUIDRef | None = None
    resultValueMin: float | None = None
    resultValueMax: float | None = None
    metadata: dict[str, str] | None = None


class Result(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename={"class_": "class"}):
    """One student's cell of a line item. 1.2 makes `score` optional (a status alone, or a
    `textScore` for a label scale) and adds `textScore` and `scoreScale`."""

    sourcedId: str
    status: RecordStatus
    dateLastModified: datetime
    lineItem: GUIDRef
    student: GUIDRef
    class_: GUIDRef | None = None
    scoreScale: GUIDRef | None = None
    scoreStatus: ScoreStatus
    score: float | None = None
    textScore: str | None = None
    scoreDate: date
    comment: str | None = None
    metadata: dict[str, str] | None = None


class LineItemBody(msgspec.Struct, frozen=True):
    lineItem: LineItem


class ResultBody(msgspec.Struct, frozen=True):
    result: Result


class ResultsPage(msgspec.Struct, frozen=True):
    results: list[Result]


class CodeMinorField(msgspec.Struct, frozen=True, kw_only=True):
    imsx_codeMinorFieldName: str = "TargetEndSystem"
    imsx_codeMinorFieldValue: str


class CodeMinor(msgspec.Struct, frozen=True, kw_only=True):
    imsx_codeMinorField: list[CodeMinorField]


class StatusInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """`imsx_StatusInfo`: what a provider answers with a 4xx or 5xx."""

    imsx_codeMajor: str  # success | processing | failure | unsupported
    imsx_severity: str  # status | warning | error
    imsx_description: str | None = None
    imsx_CodeMinor: CodeMinor | None = None


class StatusInfoSet(msgspec.Struct, frozen=True):
    """Several statuses at once (a collection call that failed on more than one count)."""

    imsx_statusInfoSet: list[StatusInfo]


class TokenResponse(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 6749 section 5.1."""

    access_token: str
    token_type: str
    expires_in: float | None = None
    scope: str | None = None


class TokenError(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 6749 section 5.2."""

    error: str
    error_description: str | None = None


_encoder = msgspec.json.Encoder()
_line_item_body = msgspec.json.Decoder(LineItemBody)
_result_body = msgspec.json.Decoder(ResultBody)
_results_page = msgspec.json.Decoder(ResultsPage)


class _AnyStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What a provider's error body may hold: one status, or a set (1.1 called it `statusInfoSet`)."""

    imsx_description: str | None = None
    imsx_CodeMinor: CodeMinor | None = None
    imsx_statusInfoSet: list[StatusInfo] | None = None
    statusInfoSet: list[StatusInfo] | None = None


_status_info = msgspec.json.Decoder(_AnyStatus)
_token = msgspec.json.Decoder(TokenResponse)
_token_error = msgspec.json.Decoder(TokenError)


def encode(value: msgspec.Struct) -> bytes:
    return _encoder.encode(value)


def decode_line_item_body(data: bytes) -> LineItemBody:
    return _line_item_body.decode(data)


def decode_result_body(data: bytes) -> ResultBody:
    return _result_body.decode(data)


def decode_results_page(data: bytes) -> ResultsPage:
    return _results_page.decode(data)


def decode_token(data: bytes) -> TokenResponse:
    return _token.decode(data)


def decode_token_error(data: bytes) -> TokenError:
    return _token_error.decode(data)


def provider_message(data: bytes) -> str | None:
    """The description(s) a provider gave in its error payload, or None when it sent none we read."""
    try:
        info = _status_info.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    infos: list[StatusInfo | _AnyStatus] = [*(info.imsx_statusInfoSet or info.statusInfoSet or []), info]
    parts = []
    for one in infos:
        minor = (
            ",".join(f.imsx_codeMinorFieldValue for f in one.imsx_CodeMinor.imsx_codeMinorField)
            if one.imsx_CodeMinor
            else ""
        )
        text = one.imsx_description or ""
        parts.append(f"{text} ({minor})" if text and minor else text or minor)
    return "; ".join(p for p in parts if p) or None
