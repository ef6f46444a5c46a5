"""The admin API's crosswalk: which student each vendor candidate is, as the registrar says, and the
gradebook results held until a candidate can be mapped.

- `PUT /v1/crosswalk/{vendor}/{candidate}`: set one mapping (`student`, `override`, `note`, `by`);
- `GET /v1/crosswalk/{vendor}/{candidate}`: one mapping with its history; `GET /v1/crosswalk`: a
  page, filtered by vendor, student or candidate;
- `DELETE /v1/crosswalk/{vendor}/{candidate}?by=...`;
- `POST /v1/crosswalk/import?by=...[&dry_run=true]`: a CSV file (`text/csv`, UTF-8, a header row
  naming `vendor`, `candidate`, `student` and optionally `override`, `note`). All or nothing: a file
  with any bad line changes nothing and is answered 422 with every bad line and why;
- `GET /v1/crosswalk/held`: results held for want of a mapping, with the reason.

A mapping stored releases the candidate's held results in the same transaction (they are then sent
by a delivery worker). Logs name vendors and counts, never a candidate or a student.
"""

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import asyncpg
import msgspec
import structlog
from aiohttp import web
from msgspec import Meta

from admin import bodies
from admin.errors import AdminError, BadRequest, NotFound, Unprocessable
from admin.openapi import Operation
from gradebook import crosswalk_db
from gradebook.crosswalk import MAX_SOURCED_ID, clean_sourced_id
from gradebook.crosswalk_db import Held, Mapping, Wanted
from schemas.vendor import Vendor

log = structlog.get_logger("admin")

MAX_IMPORT_BYTES: Final = 4 * 1024 * 1024
MAX_IMPORT_LINES: Final = 50_000
MAX_LINE_ERRORS: Final = 200
MAX_CANDIDATE: Final = 200
COLUMNS: Final = ("vendor", "candidate", "student", "override", "note")
REQUIRED_COLUMNS: Final = ("vendor", "candidate", "student")
_TRUE: Final = frozenset({"true", "yes", "1", "y"})
_FALSE: Final = frozenset({"false", "no", "0", "n", ""})

Candidate = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        description="the vendor's id of the candidate: iTEP's TestID; Inspera's candidate, Synap's user, Testpress's user id",
    ),
]
Student = Annotated[
    str, Meta(min_length=1, max_length=MAX_SOURCED_ID, pattern=r"\S", description="the student's sourcedId")
]
By = Annotated[
    str, Meta(min_length=1, max_length=200, pattern=r"\S", description="who: a person, or a ticket")
]
Note = Annotated[str, Meta(max_length=500)]
Limit = Annotated[int, Meta(ge=1, le=500)]


class TooLarge(AdminError):
    status = 413


class UnsupportedMedia(AdminError):
    status = 415


class MappingPut(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    student: Student
    # Wins over every other source of the crosswalk (the order's trStudent_Number included).
    override: bool = False
    note: Note | None = None
    by: By


class MappingChange(msgspec.Struct, frozen=True, kw_only=True):
    before: str | None = None
    after: str | None = None
    override: bool
    source: str
    changed_by: str
    changed_at: datetime


class MappingView(msgspec.Struct, frozen=True, kw_only=True):
    vendor: str
    candidate: str
    student: str
    override: bool
    source: Literal["api", "csv"]
    note: str | None = None
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime
    history: list[MappingChange] = []


class MappingStored(msgspec.Struct, frozen=True, kw_only=True):
    mapping: MappingView
    change: Literal["created", "updated", "unchanged"]
    previous_student: str | None = None  # set when the candidate was another student before
    released: int  # held results this mapping released


class Mappings(msgspec.Struct, frozen=True, kw_only=True):
    mappings: list[MappingView]
    next: str | None = None  # the `cursor` of the next page


class MappingsQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    vendor: Vendor | None = None
    student: Student | None = None
    candidate: Candidate | None = None
    limit: Limit = 100
    cursor: Annotated[str, Meta(max_length=500, description="`next` of the previous page")] | None = None


class DeleteQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    by: By


class ImportQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    by: By
    dry_run: bool = False  # check the file and count what it would change, store nothing


class Reassigned(msgspec.Struct, frozen=True, kw_only=True):
    line: int
    vendor: str
    candidate: str
    before: str
    after: str


class Imported(msgspec.Struct, frozen=True, kw_only=True):
    dry_run: bool
    lines: int  # mappings in the file
    created: int
    updated: int
    unchanged: int
    released: int  # held results released (0 in a dry run: nothing is stored)
    reassigned: list[Reassigned]  # candidates that were another student before: check their grades


class LineError(msgspec.Struct, frozen=True, kw_only=True):
    line: int  # 1 is the header
    error: str


class ImportRefused(msgspec.Struct, frozen=True, kw_only=True):
    """A 422 of the import: `lines` lists the bad lines of a file (absent for a bad query string)."""

    error: str
    lines: list[LineError] = []


class HeldList(msgspec.Struct, frozen=True):
    held: list[Held]  # as gradebook/crosswalk_db.py reads them


Uuid = Annotated[
    str, Meta(pattern="^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
]


class HeldQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    vendor: Vendor | None = None
    candidate: Candidate | None = None
    subscription_id: Uuid | None = None
    released: bool = False  # also the results already released
    limit: Limit = 100


class CsvRefused(Exception):
    def __init__(self, errors: list[LineError], more: int) -> None:
        super().__init__("refused")
        self.errors = errors
        self.more = more


_encoder: Final = msgspec.json.Encoder()
_cursor: Final = msgspec.json.Decoder(tuple[str, str])


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(value), status=status, content_type="application/json")


def _view(mapping: Mapping, history: list[dict[str, Any]] | None = None) -> MappingView:
    return MappingView(
        **msgspec.structs.asdict(mapping),
        history=[MappingChange(**h) for h in history or []],
    )


def _query(request: web.Request, kind: type[Any]) -> Any:
    return msgspec.convert(dict(request.query), kind, strict=False)


def _key(request: web.Request) -> tuple[Vendor, str]:
    try:
        vendor = Vendor(request.match_info["vendor"])
    except ValueError:
        raise NotFound(f"no such vendor: one of {', '.join(v.value for v in Vendor)}") from None
    candidate = clean_sourced_id(request.match_info["candidate"], MAX_CANDIDATE)
    if candidate is None or candidate != request.match_info["candidate"]:
        raise NotFound("no such candidate: 1 to 200 characters, no spaces around, no control characters")
    return vendor, candidate


def _as_bool(text: str) -> bool | None:
    value = text.strip().lower()
    return True if value in _TRUE else False if value in _FALSE else None


def parse_csv(text: str) -> list[tuple[int, Wanted]]:
    """Every mapping of the file with its line number, or CsvRefused listing every bad line."""
    errors: list[LineError] = []
    more = 0

    def bad(line: int, error: str) -> None:
        nonlocal more
        if len(errors) < MAX_LINE_ERRORS:
            errors.append(LineError(line=line, error=error))
        else:
            more += 1

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise CsvRefused([LineError(line=1, error=f"not CSV: {error}")], 0) from None
    if header is None or not any(cell.strip() for cell in header):
        raise CsvRefused(
            [LineError(line=1, error="no header row (vendor,candidate,student[,override][,note])")], 0
        )
    names = [cell.strip().lower() for cell in header]
    unknown = [n for n in names if n not in COLUMNS]
    missing = [n for n in REQUIRED_COLUMNS if n not in names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if unknown or missing or repeated:
        parts = [
            *(f"unknown column {n!r}" for n in unknown),
            *(f"missing column {n!r}" for n in missing),
            *(f"column {n!r} given twice" for n in repeated),
        ]
        raise CsvRefused([LineError(line=1, error="; ".join(parts) + f" (columns: {', '.join(COLUMNS)})")], 0)
    column = {n: i for i, n in enumerate(names)}
    found: list[tuple[int, Wanted]] = []
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    line = 1
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(found) >= MAX_IMPORT_LINES:
                bad(line, f"more than {MAX_IMPORT_LINES} mappings: split the file")
                break
            if len(cells) != len(names):
                bad(line, f"{len(cells)} fields, the header has {len(names)}")
                continue
            values = {n: cells[i] for n, i in column.items()}
            problems = []
            vendor_text = values["vendor"].strip().lower()
            vendor = Vendor(vendor_text) if vendor_text in {v.value for v in Vendor} else None
            if vendor is None:
                problems.append(
                    f"vendor {values['vendor']!r} is not one of {', '.join(v.value for v in Vendor)}"
                )
            candidate = clean_sourced_id(values["candidate"], MAX_CANDIDATE) or ""
            if not candidate:
                problems.append(
                    f"candidate is empty, longer than {MAX_CANDIDATE} characters, or holds control characters"
                )
            student = clean_sourced_id(values["student"])
            if student is None:
                problems.append(
                    f"student is empty, longer than {MAX_SOURCED_ID} characters, or holds control characters"
                )
            override = _as_bool(values.get("override", ""))
            if override is None:
                problems.append(f"override {values['override']!r} is not true or false")
            note = values.get("note", "").strip() or None
            if note is not None and len(note) > 500:
                problems.append("note is longer than 500 characters")
            if problems:
                bad(line, "; ".join(problems))
                continue
            assert vendor is not None and student is not None and override is not None
            earlier = seen.get((vendor.value, candidate))
            if earlier is not None:
                if earlier[1] != student:
                    bad(
                        line,
                        f"{vendor.value} {candidate!r} is mapped to {earlier[1]!r} on line {earlier[0]} already",
                    )
                continue
            seen[(vendor.value, candidate)] = (line, student)
            found.append(
                (
                    line,
                    Wanted(vendor=vendor, candidate=candidate, student=student, override=override, note=note),
                )
            )
    except csv.Error as error:
        bad(line + 1, f"not CSV: {error}")
    if errors:
        raise CsvRefused(errors, more)
    if not found:
        raise CsvRefused([LineError(line=1, error="the file holds no mapping")], 0)
    return found


class CrosswalkHandlers:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def put(self, request: web.Request) -> web.Response:
        vendor, candidate = _key(request)
        body = await bodies.json(request, MappingPut)
        student = clean_sourced_id(body.student)
        if student is None:
            raise Unprocessable("student: control and format characters are not allowed")
        wanted = Wanted(
            vendor=vendor, candidate=candidate, student=student, override=body.override, note=body.note
        )
        async with self._pool.acquire() as conn:
            stored = await crosswalk_db.put_mapping(conn, wanted, by=body.by, source="api")
            history = await crosswalk_db.changes(conn, vendor, candidate)
        log.info(
            "crosswalk mapping stored", vendor=vendor.value, change=stored.change, released=stored.released
        )
        return _json(
            MappingStored(
                mapping=_view(stored.mapping, history),
                change=stored.change,
                previous_student=stored.before,
                released=stored.released,
            )
        )

    async def get(self, request: web.Request) -> web.Response:
        vendor, candidate = _key(request)
        async with self._pool.acquire() as conn:
            found = await crosswalk_db.get_mapping(conn, vendor, candidate)
            if found is None:
                raise NotFound("no mapping for that candidate")
            return _json(_view(found, await crosswalk_db.changes(conn, vendor, candidate)))

    async def list(self, request: web.Request) -> web.Response:
        query: MappingsQuery = _query(request, MappingsQuery)
        after = None
        if query.cursor is not None:
            try:
                after = _cursor.decode(query.cursor)
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise Unprocessable("cursor: not a cursor this API gave") from None
        async with self._pool.acquire() as conn:
            found = await crosswalk_db.list_mappings(
                conn,
                vendor=query.vendor,
                student=query.student,
                candidate=query.candidate,
                after=after,
                limit=query.limit + 1,
            )
        page = found[: query.limit]
        more = len(found) > query.limit
        cursor = _encoder.encode((page[-1].vendor, page[-1].candidate)).decode() if more else None
        return _json(Mappings(mappings=[_view(m) for m in page], next=cursor))

    async def delete(self, request: web.Request) -> web.Response:
        vendor, candidate = _key(request)
        query: DeleteQuery = _query(request, DeleteQuery)
        async with self._pool.acquire() as conn:
            if not await crosswalk_db.delete_mapping(conn, vendor, candidate, by=query.by):
                raise NotFound("no mapping for that candidate")
        log.info("crosswalk mapping deleted", vendor=vendor.value)
        return web.Response(status=204)

    async def import_csv(self, request: web.Request) -> web.Response:
        query: ImportQuery = _query(request, ImportQuery)
        if request.content_type != "text/csv":
            raise UnsupportedMedia("send the file as text/csv")
        if (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
            raise UnsupportedMedia("the file must be UTF-8")
        if request.content_length is not None and request.content_length > MAX_IMPORT_BYTES:
            raise TooLarge(f"the file is larger than {MAX_IMPORT_BYTES} bytes: split it")
        # Read past the app's small body limit, up to ours (a registrar's list is bigger than a JSON call).
        raw = await request.content.read(MAX_IMPORT_BYTES + 1)
        if len(raw) > MAX_IMPORT_BYTES:
            raise TooLarge(f"the file is larger than {MAX_IMPORT_BYTES} bytes: split it")
        try:
            text = raw.decode("utf-8-sig")  # a byte-order mark, as spreadsheets write, is not data
        except UnicodeDecodeError as error:
            raise BadRequest(f"the file is not UTF-8 (byte {error.start})") from None
        if "\x00" in text:
            raise BadRequest("the file holds a NUL character")
        try:
            wanted = parse_csv(text)
        except CsvRefused as refused:
            count = len(refused.errors) + refused.more
            more = f" (the first {len(refused.errors)} are listed)" if refused.more else ""
            return _json(
                ImportRefused(
                    error=f"{count} line{'s' if count != 1 else ''} refused{more}; nothing was imported",
                    lines=refused.errors,
                ),
                status=422,
            )
        async with self._pool.acquire() as conn:
            stored = await crosswalk_db.import_mappings(
                conn, [one for _, one in wanted], by=query.by, dry_run=query.dry_run
            )
        summary = Imported(
            dry_run=query.dry_run,
            lines=len(wanted),
            created=sum(s.change == "created" for s in stored),
            updated=sum(s.change == "updated" for s in stored),
            unchanged=sum(s.change == "unchanged" for s in stored),
            released=0 if query.dry_run else sum(s.released for s in stored),
            reassigned=[
                Reassigned(
                    line=line,
                    vendor=s.mapping.vendor,
                    candidate=s.mapping.candidate,
                    before=s.before,
                    after=s.mapping.student,
                )
                for (line, _), s in zip(wanted, stored, strict=True)
                if s.before is not None
            ],
        )
        log.info(
            "crosswalk imported",
            dry_run=query.dry_run,
            lines=summary.lines,
            created=summary.created,
            updated=summary.updated,
            released=summary.released,
        )
        return _json(summary)

    async def held(self, request: web.Request) -> web.Response:
        query: HeldQuery = _query(request, HeldQuery)
        async with self._pool.acquire() as conn:
            found: list[Held] = await crosswalk_db.held(
                conn,
                vendor=query.vendor,
                candidate=query.candidate,
                subscription_id=query.subscription_id,
                waiting_only=not query.released,
                limit=query.limit,
            )
        return _json(HeldList(found))


Route = tuple[Operation, Callable[[web.Request], Awaitable[web.StreamResponse]]]
_KEY_PARAMS: Final = (("vendor", Vendor), ("candidate", Candidate))


def routes(pool: asyncpg.Pool) -> list[Route]:
    h = CrosswalkHandlers(pool)
    one = "/v1/crosswalk/{vendor}/{candidate}"
    return [
        (
            Operation(
                "GET",
                "/v1/crosswalk",
                "crosswalk mappings (vendor candidate -> student), filtered, in vendor and candidate order",
                200,
                Mappings,
                query=MappingsQuery,
            ),
            h.list,
        ),
        (
            Operation(
                "GET",
                "/v1/crosswalk/held",
                "gradebook results held because their candidate maps to no student yet, with the reason",
                200,
                HeldList,
                query=HeldQuery,
            ),
            h.held,
        ),
        (
            Operation(
                "POST",
                "/v1/crosswalk/import",
                "import mappings from a CSV file (header vendor,candidate,student[,override][,note]);"
                " all or nothing: any bad line refuses the file (422, every bad line listed)",
                200,
                Imported,
                body=str,
                query=ImportQuery,
                body_media_type="text/csv",
                errors=(413, 415),
                error_bodies=((422, ImportRefused),),
            ),
            h.import_csv,
        ),
        (
            Operation("GET", one, "one mapping with its history", 200, MappingView, path_params=_KEY_PARAMS),
            h.get,
        ),
        (
            Operation(
                "PUT",
                one,
                "map a vendor candidate to a student (releases the results held for it)",
                200,
                MappingStored,
                body=MappingPut,
                path_params=_KEY_PARAMS,
            ),
            h.put,
        ),
        (
            Operation(
                "DELETE",
                one,
                "remove a mapping (results already written stay where they are)",
                204,
                None,
                query=DeleteQuery,
                path_params=_KEY_PARAMS,
            ),
            h.delete,
        ),
    ]
