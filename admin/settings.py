"""Admin API settings, read once from the environment; a bad or missing value stops the boot."""

from collections.abc import Mapping

import msgspec

from common.env import SettingError, env_flag, env_int, env_str
from common.settings import WorkerSettings


class AdminSettings(msgspec.Struct, frozen=True, kw_only=True):
    worker: WorkerSettings  # broker, database and schema, as the workers read them
    host: str = "127.0.0.1"
    port: int = 8081
    # None only when authentication was switched off on purpose (RESULTBUS_ADMIN_NO_AUTH=1).
    token: str | None = None
    allow_private: bool = False

    def __repr__(self) -> str:  # the token stays out of logs and tracebacks
        return f"AdminSettings(host={self.host!r}, port={self.port}, auth={self.token is not None})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "AdminSettings":
        port = env_int(env, "RESULTBUS_ADMIN_PORT", 8081, minimum=1)
        if port > 65535:
            raise SettingError(f"RESULTBUS_ADMIN_PORT: must be at most 65535, got {port}")
        token = env.get("RESULTBUS_ADMIN_TOKEN") or None
        no_auth = env_flag(env, "RESULTBUS_ADMIN_NO_AUTH")
        if token is None and not no_auth:
            raise SettingError(
                "RESULTBUS_ADMIN_TOKEN: not set (set a long random token, or RESULTBUS_ADMIN_NO_AUTH=1 "
                "for a local setup without authentication)"
            )
        if token is not None and len(token) < 16:
            raise SettingError("RESULTBUS_ADMIN_TOKEN: use at least 16 characters")
        return cls(
            worker=WorkerSettings.from_env(env),
            host=env_str(env, "RESULTBUS_ADMIN_HOST", "127.0.0.1"),
            port=port,
            token=None if no_auth else token,
            allow_private=env_flag(env, "RESULTBUS_ALLOW_PRIVATE_ENDPOINTS"),
        )
