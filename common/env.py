"""Reading typed settings from the environment, from one declaration per setting.

Each setting is declared once (`Setting`: its name, default, syntax and meaning). A role reads its
settings through these declarations, and its `--help` lists the same declarations: the help is the
whole truth whatever the environment holds, and a bad value stops the process at start-up with the
variable's name, never later at first use.
"""

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, NamedTuple, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")
N = TypeVar("N", int, float)


class SettingError(Exception):
    """A setting is missing or malformed; the message names it."""


class Setting(Generic[T]):
    """One environment variable: `read` gives its value (or the default when it is unset), `shown` is
    the default as a user would write it ("(required)" for one without a default)."""

    def __init__(
        self,
        name: str,
        default: T,
        parse: Callable[[str], T],
        *,
        shown: str,
        help: str,
        required: bool = False,
    ) -> None:
        self.name = name
        self.default = default
        self.shown = shown
        self.help = help
        self.required = required
        self._parse = parse

    def __repr__(self) -> str:
        return f"Setting({self.name}={self.shown})"

    def read(self, env: Mapping[str, str]) -> T:
        raw = env.get(self.name)
        if raw is None or (self.required and not raw.strip()):
            if self.required:
                raise SettingError(f"{self.name}: not set ({self.help})")
            return self.default
        try:
            return self._parse(raw)
        except ValueError as error:
            raise SettingError(f"{self.name}: {error}") from None


class Group(NamedTuple):
    """Settings listed together in `--help` under one title."""

    title: str
    settings: tuple[Setting[Any], ...]


def process_env() -> Mapping[str, str]:
    return os.environ


def text(name: str, default: str, *, help: str) -> Setting[str]:
    return Setting(name, default, str, shown=default or '""', help=help)


def required_text(name: str, *, help: str) -> Setting[str]:
    """Blank counts as unset; the value is stripped."""
    return Setting(name, "", str.strip, shown="(required)", help=help, required=True)


def optional_text(name: str, *, absent: str, help: str) -> Setting[str | None]:
    """Unset or empty: None, which `absent` says the meaning of (`(off)`, `(the database's default)`)."""
    return Setting[str | None](name, None, lambda raw: raw or None, shown=absent, help=help)


def choice(
    name: str, default: str, choices: Sequence[str], *, help: str, upper: bool = False
) -> Setting[str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return Setting(name, default, parse, shown=default, help=help)


def _check_bounds(value: float, raw: str, minimum: float, maximum: float | None, unit: str = "") -> None:
    if value < minimum:
        raise ValueError(f"must be at least {minimum:g}{unit}, got {raw!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"must be at most {maximum:g}{unit}, got {raw!r}")


def _number_parser(
    convert: Callable[[str], N], what: str, minimum: float, maximum: float | None
) -> Callable[[str], N]:
    def parse(raw: str) -> N:
        try:
            value = convert(raw)
        except ValueError:
            raise ValueError(f"expected {what}, got {raw!r}") from None
        _check_bounds(value, raw, minimum, maximum)
        return value

    return parse


def integer(
    name: str, default: int, *, minimum: int = 0, maximum: int | None = None, help: str
) -> Setting[int]:
    return Setting(
        name, default, _number_parser(int, "an integer", minimum, maximum), shown=str(default), help=help
    )


def number(name: str, default: float, *, minimum: float = 0.0, help: str) -> Setting[float]:
    return Setting(
        name, default, _number_parser(float, "a number", minimum, None), shown=f"{default:g}", help=help
    )


def port(name: str, default: int, *, help: str) -> Setting[int]:
    return integer(name, default, minimum=1, maximum=65535, help=help)


def optional_port(name: str, *, absent: str = "(off)", help: str) -> Setting[int | None]:
    """Unset or empty: None (the feature it serves is off)."""
    bounded = port(name, 0, help=help)

    def parse(raw: str) -> int | None:
        return None if raw == "" else bounded._parse(raw)

    return Setting[int | None](name, None, parse, shown=absent, help=help)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def parse_flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def flag(name: str, *, help: str) -> Setting[bool]:
    """Off unless set to 1/true/yes/on."""
    return Setting(name, False, parse_flag, shown="off", help=help)


def optional_flag(name: str, *, absent: str, help: str) -> Setting[bool | None]:
    """A flag whose absence means "decide for me" (JSON logs: only when not on a terminal)."""
    return Setting[bool | None](name, None, parse_flag, shown=absent, help=help)


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?")
DURATION_SYNTAX = "a duration is 500ms, 10s, 5m, 8h, 30d or a number of seconds"


def parse_duration(text: str) -> float:
    """Seconds from `500ms`, `10s`, `5m`, `8h`, `30d` or a bare number of seconds (`2.5`). The one
    duration syntax of every setting."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected a duration such as 500ms, 10s, 5m, 8h or 30d, got {text.strip()!r}")
    return float(match[1]) * _UNITS[match[2] or "s"]


def format_duration(seconds: float) -> str:
    """The duration as the docs write it, in the largest unit that holds it whole (`30d`, `2m`,
    `500ms`); `parse_duration` reads it back to the same value."""
    if seconds == 0:
        return "0"
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{round(seconds / size)}{unit}"
    if seconds < 1 and round(seconds * 1000, 6).is_integer():
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"


def parse_durations(text: str) -> tuple[float, ...]:
    """A comma-separated list of durations, such as a retry schedule: `5s,30s,2m` or `5,30,120`."""
    parts = [part.strip() for part in text.split(",")]
    if any(not part for part in parts):
        raise ValueError(f"an empty item in {text!r}")
    return tuple(parse_duration(part) for part in parts)


def duration(name: str, default: float, *, minimum: float = 0.0, help: str) -> Setting[float]:
    def parse(raw: str) -> float:
        value = parse_duration(raw)
        _check_bounds(value, raw, minimum, None, "s")
        return value

    return Setting(name, default, parse, shown=format_duration(default), help=help)


def durations(
    name: str, default: Sequence[float], *, allow_empty: bool = True, help: str
) -> Setting[tuple[float, ...]]:
    """A list of durations; set but empty: none at all, where that makes sense."""

    def parse(raw: str) -> tuple[float, ...]:
        if raw.strip():
            return parse_durations(raw)
        if not allow_empty:
            raise ValueError("must list at least one duration")
        return ()

    shown = ",".join(format_duration(d) for d in default) or '""'
    return Setting(name, tuple(default), parse, shown=shown, help=help)


def redact_url(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
