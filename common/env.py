"""Reading typed settings from the environment.

A bad value stops the process at start-up with the variable's name, never later at first use.
"""

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit


class SettingError(Exception):
    """A setting is missing or malformed; the message names it."""


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, default)


def env_float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name}: expected a number, got {raw!r}") from None
    if value < minimum:
        raise SettingError(f"{name}: must be at least {minimum}, got {raw!r}")
    return value


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingError(f"{name}: must be at least {minimum}, got {raw!r}")
    return value


def process_env() -> Mapping[str, str]:
    return os.environ


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def env_flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingError(f"{name}: expected true or false, got {raw!r}")


def env_optional_flag(env: Mapping[str, str], name: str) -> bool | None:
    """A flag whose absence means "decide for me" (JSON logs: only when not on a terminal)."""
    return None if env.get(name) is None else env_flag(env, name)


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?")


def parse_duration(text: str) -> float:
    """Seconds from `500ms`, `10s`, `5m`, `8h`, `30d` or a bare number of seconds (`2.5`). The one
    duration syntax of every setting."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected a duration such as 500ms, 10s, 5m, 8h or 30d, got {text.strip()!r}")
    return float(match[1]) * _UNITS[match[2] or "s"]


def env_duration(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = parse_duration(raw)
    except ValueError as error:
        raise SettingError(f"{name}: {error}") from None
    if value < minimum:
        raise SettingError(f"{name}: must be at least {minimum:g}s, got {raw!r}")
    return value


def parse_durations(text: str) -> tuple[float, ...]:
    """A comma-separated list of durations, such as a retry schedule: `5s,30s,2m` or `5,30,120`."""
    parts = [part.strip() for part in text.split(",")]
    if any(not part for part in parts):
        raise ValueError(f"an empty item in {text!r}")
    return tuple(parse_duration(part) for part in parts)


def env_durations(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default if raw is None else ()
    try:
        return parse_durations(raw)
    except ValueError as error:
        raise SettingError(f"{name}: {error}") from None


def env_port(env: Mapping[str, str], name: str) -> int | None:
    """An optional TCP port: unset means the feature is off."""
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    port = env_int(env, name, 0, minimum=1)
    if port > 65535:
        raise SettingError(f"{name}: must be at most 65535, got {raw!r}")
    return port


def redact_url(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
