"""Score scales: how a vendor's normalized result becomes the one score a gradebook cell holds.

A destination chooses one scale per vendor (`scales` in its config; DEFAULT_SCALES otherwise). Each
scale reads one part of `ResultEvent.result` and says what it implies for OneRoster: a numeric scale
gives `score` and the line item's `resultValueMin`/`resultValueMax`; a label scale gives `textScore`
and the labels its OneRoster `scoreScale` holds (the institution's ScoreScale record, referenced by
`score_scale` when it has one). Pure: no I/O.

| kind | reads | OneRoster |
|---|---|---|
| `itep_level` | `result.level` (iTEP 0-6), or a section's | score, 0-6 |
| `cefr` | `result.cefr` (A1…C2), or a section's | textScore, scoreScale of CEFR labels |
| `points` | `result.score` out of `result.max_score` or the configured `max_score` | score, 0-max |
| `fraction` | `result.percent` / 100 (Synap `scoreFrac`), times `out_of` | score, 0-out_of |
| `percent` | `result.percent` | score, 0-100 |
| `grade_label` | `result.grade.label` (Synap, or any vendor that sends one) | textScore, scoreScale of the labels |
"""

from collections.abc import Mapping, Sequence
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from schemas.event import Result
from schemas.vendor import Vendor

CEFR_LEVELS: Final = ("A1", "A2", "B1", "B2", "C1", "C2")
ITEP_LEVEL_MAX: Final = 6.0

SourcedId = Annotated[str, Meta(min_length=1, max_length=255, description="a OneRoster sourcedId")]
SectionName = Annotated[
    str, Meta(min_length=1, max_length=50, description="a section instead of the overall result")
]


class ItepLevel(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="itep_level"
):
    """iTEP's level, 0.0-6.0: the overall level, or one section's (`grammar`, `listening`, …)."""

    section: SectionName | None = None


class Cefr(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="cefr"
):
    """The CEFR label iTEP reports (A1…C2), overall or for one section, as a text score."""

    section: SectionName | None = None
    score_scale: SourcedId | None = None


class Points(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="points"
):
    """The vendor's score out of its maximum. Testpress sends no maximum: give it as `max_score`
    (the exam's total marks); Synap sends `marks.maxPoints`, which wins when present."""

    max_score: Annotated[float, Meta(gt=0)] | None = None


class Fraction(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="fraction"
):
    """Synap's `scoreFrac` (0-1), scaled to `out_of` (1: the fraction itself; 100: a percentage)."""

    out_of: Annotated[float, Meta(gt=0)] = 1.0


class Percent(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="percent"
):
    """The vendor's percentage (Testpress `percentage`, iTEP section percents), 0-100."""

    section: SectionName | None = None


class GradeLabel(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="grade_label"
):
    """The grade's label (Synap `grade.label`; Inspera, whose webhooks carry no grade, when a grade
    is ever sent). With `labels`, a label outside them is refused rather than written."""

    labels: Annotated[list[Annotated[str, Meta(min_length=1, max_length=100)]], Meta(max_length=100)] = []
    score_scale: SourcedId | None = None


Scale = ItepLevel | Cefr | Points | Fraction | Percent | GradeLabel

DEFAULT_SCALES: Final[Mapping[Vendor, Scale]] = {
    Vendor.ITEP: ItepLevel(),
    Vendor.SYNAP: Fraction(),
    Vendor.TESTPRESS: Points(),  # needs `max_score`: see problems()
    Vendor.INSPERA: GradeLabel(),
}


class Scored(msgspec.Struct, frozen=True, kw_only=True):
    """A gradebook score: a number, or a label of a label scale."""

    score: float | None = None
    text_score: str | None = None
    value_min: float | None = None  # the line item's resultValueMin
    value_max: float | None = None  # the line item's resultValueMax
    labels: Sequence[str] = ()  # a label scale's values, in order
    score_scale: str | None = None  # the institution's ScoreScale sourcedId


class Unscorable(msgspec.Struct, frozen=True):
    """The event carries no score this scale can read; `reason` says what is missing."""

    reason: str


def scale_for(vendor: Vendor, scales: Mapping[Vendor, Scale]) -> Scale:
    return scales.get(vendor, DEFAULT_SCALES[vendor])


def problems(vendor: Vendor, scale: Scale) -> list[str]:
    """What is wrong with using `scale` for `vendor`, found when a destination is configured rather
    than at its first result."""
    found = []
    if vendor is Vendor.TESTPRESS and isinstance(scale, Points) and scale.max_score is None:
        found.append("testpress: the points scale needs max_score (Testpress sends no maximum)")
    if vendor is not Vendor.ITEP and isinstance(scale, ItepLevel | Cefr):
        found.append(f"{vendor.value}: {_kind(scale)} reads iTEP levels, which {vendor.value} does not send")
    if vendor is Vendor.ITEP and isinstance(scale, Points | Fraction | GradeLabel):
        found.append(f"itep: {_kind(scale)} reads what iTEP does not send (levels, CEFR and percents)")
    return found


def _kind(scale: Scale) -> str:
    kind: str = type(scale).__struct_config__.tag  # type: ignore[assignment]
    return kind


def score_scale_of(scale: Scale) -> str | None:
    """The institution's ScoreScale a label scale refers to, if it names one."""
    return scale.score_scale if isinstance(scale, Cefr | GradeLabel) else None


def implied_range(scale: Scale, result: Result | None) -> tuple[float | None, float | None]:
    """The line item's resultValueMin/Max a scale implies (None, None for a label scale)."""
    match scale:
        case ItepLevel():
            return 0.0, ITEP_LEVEL_MAX
        case Points(max_score=configured):
            sent = result.max_score if result is not None else None
            return 0.0, sent if sent is not None else configured
        case Fraction(out_of=out_of):
            return 0.0, out_of
        case Percent():
            return 0.0, 100.0
        case _:
            return None, None


def score(scale: Scale, result: Result | None) -> Scored | Unscorable:
    """The gradebook score of a result under `scale`, or why there is none."""
    if result is None:
        return Unscorable("the event carries no result")
    low, high = implied_range(scale, result)
    match scale:
        case ItepLevel(section=section):
            level = _section(result, section).level if section else result.level
            if level is None:
                return Unscorable(f"no iTEP level{_of(section)} in the result")
            return Scored(score=level, value_min=low, value_max=high)
        case Cefr(section=section, score_scale=ref):
            cefr = _section(result, section).cefr if section else result.cefr
            if cefr is None:
                return Unscorable(f"no CEFR label{_of(section)} in the result")
            label = cefr.strip().upper()
            if label not in CEFR_LEVELS:
                return Unscorable(f"CEFR label {cefr!r} is not one of {', '.join(CEFR_LEVELS)}")
            return Scored(text_score=label, labels=CEFR_LEVELS, score_scale=ref)
        case Points():
            if result.score is None:
                return Unscorable("no score in the result")
            if high is None:
                return Unscorable("no maximum score: the vendor sent none and the scale sets no max_score")
            return Scored(score=result.score, value_min=low, value_max=high)
        case Fraction(out_of=out_of):
            if result.percent is None:
                return Unscorable("no score fraction in the result")
            return Scored(score=round(result.percent / 100 * out_of, 6), value_min=low, value_max=high)
        case Percent(section=section):
            percent = _section(result, section).percent if section else result.percent
            if percent is None:
                return Unscorable(f"no percentage{_of(section)} in the result")
            return Scored(score=percent, value_min=low, value_max=high)
        case GradeLabel(labels=labels, score_scale=ref):
            if result.grade is None:
                return Unscorable("no grade label in the result")
            if labels and result.grade.label not in labels:
                return Unscorable(f"grade {result.grade.label!r} is not one of the scale's labels")
            return Scored(text_score=result.grade.label, labels=tuple(labels), score_scale=ref)
    raise AssertionError(scale)  # pragma: no cover - the match covers every Scale


class _NoSection(msgspec.Struct, frozen=True):
    level: float | None = None
    cefr: str | None = None
    percent: float | None = None


def _section(result: Result, name: str) -> _NoSection:
    for section in result.sections:
        if section.name == name.lower():
            return _NoSection(section.level, section.cefr, section.percent)
    return _NoSection()


def _of(section: str | None) -> str:
    return f" for section {section!r}" if section else ""
