"""Pure helpers for the pages: raw bodies made readable with credentials hidden, the overview's
chart as geometry, times in one format. No HTML is built here: the templates escape everything."""

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec

from vendors.base import RejectedWebhook
from vendors.itep import multipart_fields

HIDDEN: Final = "•••• hidden ••••"
# Field names whose values are credentials or derived from one (Testpress' `hash`, signatures):
# shown as HIDDEN, whatever the vendor.
_SENSITIVE: Final = re.compile(
    r"secret|token|passw|signature|^sig$|hash|api[_-]?key|private|authori[sz]ation|credential",
    re.IGNORECASE,
)


# What reading a stored body as JSON may raise: not JSON (ValueError), or JSON nested deeper than the
# json module and the redaction follow (RecursionError: the router stores such a webhook as rejected,
# so its page must still show it). Either way the body is shown as sent.
_NOT_JSON: Final = (ValueError, RecursionError)


def sensitive(name: str) -> bool:
    return bool(_SENSITIVE.search(name))


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: HIDDEN if sensitive(str(k)) else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def show_body(body: bytes | None, content_type: str | None, size: int | None = None) -> str:
    """A raw webhook body as text for a <pre>: JSON pretty-printed and forms one field a line, with
    credential-like fields hidden; anything else as sent (invalid UTF-8 replaced)."""
    if body is None:
        return ""
    data = bytes(body)
    text = data.decode("utf-8", "replace")
    kind = (content_type or "").split(";")[0].strip().lower()
    cut = size is not None and size > len(data)
    shown: str | None = None
    if not cut and (kind.endswith("json") or text.lstrip().startswith(("{", "["))):
        try:
            shown = json.dumps(_redact(json.loads(text)), indent=2, ensure_ascii=False)
        except _NOT_JSON:
            shown = None
    if shown is None and kind == "application/x-www-form-urlencoded" and not cut:
        pairs = parse_qsl(text, keep_blank_values=True)
        shown = _fields(pairs)
    if shown is None and kind == "multipart/form-data" and not cut:
        # Shown as the urlencoded form is: one field a line, a JSON value pretty.
        try:
            parts = multipart_fields(content_type or "", data)
        except RejectedWebhook:
            parts = []
        if parts:
            shown = _fields((n.decode("utf-8", "replace"), v.decode("utf-8", "replace")) for n, v in parts)
    if shown is None:
        # Plain text, or a multipart body that does not parse: field values after a credential-like
        # name are hidden line by line.
        shown = _redact_lines(text)
    if cut:
        shown += f"\n… (first {len(data)} of {size} bytes shown)"
    return shown


def _fields(pairs: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"{k} = {HIDDEN if sensitive(k) else _field(v)}" for k, v in pairs)


def _field(value: str) -> str:
    """A form field's value; one that holds a JSON object (iTEP's `data`) shown pretty and redacted."""
    if value.lstrip().startswith("{"):
        try:
            return json.dumps(_redact(json.loads(value)), indent=2, ensure_ascii=False)
        except _NOT_JSON:
            pass
    return value


_MULTIPART_NAME: Final = re.compile(r'name="([^"]*)"', re.IGNORECASE)


def _redact_lines(text: str) -> str:
    out: list[str] = []
    hide_next_value = False
    for line in text.splitlines():
        name = _MULTIPART_NAME.search(line)
        if name is not None:
            hide_next_value = sensitive(name[1])
            out.append(line)
        elif hide_next_value and line.strip() and not line.startswith("--") and ":" not in line[:40]:
            out.append(HIDDEN)
            hide_next_value = False
        else:
            out.append(line)
    return "\n".join(out)


def pretty_json(text: str | None) -> str:
    if not text:
        return ""
    try:
        return json.dumps(_redact(json.loads(text)), indent=2, ensure_ascii=False)
    except _NOT_JSON:
        return text


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Bar(msgspec.Struct, frozen=True):
    x: float
    y: float
    height: float
    outcome: str
    count: int
    hour: str


class Chart(msgspec.Struct, frozen=True):
    width: int
    height: int
    left: int  # room for the scale's labels, left of the bars
    bar_width: float
    bars: list[Bar]
    peak: int
    top: int  # the scale's top: a round number at or above the peak
    ticks: list[tuple[float, str]]  # (y, count) of the scale's lines
    labels: list[tuple[float, str]]  # (x, hour) under some bars


def nice_top(peak: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, … that is at least `peak` (1 when there is nothing)."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if top * step >= peak:
                return top * step
        top *= 10


def hourly_chart(
    counts: Iterable[tuple[datetime, str, int]],
    now: datetime,
    *,
    hours: int = 24,
    width: int = 720,
    height: int = 120,
    left: int = 40,
) -> Chart:
    """Stacked bars, one per hour of the last `hours` (the current hour last), rejected on top of
    accepted, on a scale from 0 to a round number at or above the peak: geometry for an inline SVG."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    slots = [end - timedelta(hours=hours - 1 - i) for i in range(hours)]
    index = {slot: i for i, slot in enumerate(slots)}
    totals: list[dict[str, int]] = [{} for _ in slots]
    for hour, outcome, n in counts:
        i = index.get(hour.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
        if i is not None:
            totals[i][outcome] = totals[i].get(outcome, 0) + n
    peak = max((sum(t.values()) for t in totals), default=0)
    top = nice_top(peak)
    slot_width = (width - left) / hours
    bars: list[Bar] = []
    for i, slot in enumerate(slots):
        base = float(height)
        for outcome in ("accepted", "rejected"):
            n = totals[i].get(outcome, 0)
            if not n:
                continue
            h = height * n / top
            base -= h
            bars.append(
                Bar(round(left + i * slot_width + 1, 2), round(base, 2), round(h, 2), outcome, n, when(slot))
            )
    # Lines at 0, half way (when that is a whole count) and the top.
    marks = [0, top // 2, top] if top % 2 == 0 else [0, top]
    ticks = [(round(height - height * m / top, 2), f"{m:,}") for m in marks]
    labels = [(round(left + i * slot_width, 2), slots[i].strftime("%H:00")) for i in range(0, hours, 6)]
    return Chart(width, height, left, round(slot_width - 2, 2), bars, peak, top, ticks, labels)
