"""Reading typed settings from the environment.

A bad value stops the process at start-up with the variable's name, never later at first use.
"""

import os
import re
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit


class SettingError(Exception):
    """A setting is missing or malformed; the message names it."""


class SettingsHelp(Mapping[str, str]):
    """The environment, noting every variable a settings reader asks for and the default it would
    use: how `--help` lists a role's settings without a second list to keep in step."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.seen: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        self.seen.setdefault(name, "(unset)")
        return self._env[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def _default(env: Mapping[str, str], name: str, default: object) -> None:
    if isinstance(env, SettingsHelp):
        env.seen[name] = _shown(default)


def _shown(value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(_shown(v) for v in value) or '""'
    return str(value)


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    _default(env, name, default)
    return env.get(name, default)


def env_float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    _default(env, name, default)
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
    _default(env, name, default)
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
    _default(env, name, False)
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
    _default(env, name, default)
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
    _default(env, name, default)
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default if raw is None else ()
    try:
        return parse_durations(raw)
    except ValueError as error:
        raise SettingError(f"{name}: {error}") from None


def env_port(env: Mapping[str, str], name: str) -> int | None:
    """An optional TCP port: unset means the feature is off."""
    _default(env, name, None)
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
