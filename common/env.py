"""Reading typed settings from the environment.

A bad value stops the process at start-up with the variable's name, never later at first use.
"""

import os
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


def env_floats(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    """A comma-separated list of non-negative numbers, such as a retry schedule: `5,30,120`."""
    raw = env.get(name)
    if raw is None:
        return default
    try:
        values = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingError(f"{name}: expected comma-separated numbers, got {raw!r}") from None
    if any(v < 0 for v in values):
        raise SettingError(f"{name}: numbers must not be negative, got {raw!r}")
    return values


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
