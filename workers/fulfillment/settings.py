"""Fulfillment worker settings, read once from the environment; a bad or missing one stops the boot.

iTEP does not publish the name of the header that carries the signature, nor its encoding (its
page says only that the header's *key* directs processing, and that the GTX and STX calls differ in
that header alone): both are settings, one header name per product-code group, to be had from iTEP.
"""

from collections.abc import Mapping
from typing import Literal

import msgspec

from common.env import SettingError, env_duration, env_durations, env_str

Encoding = Literal["hex", "base64"]


class FulfillmentSettings(msgspec.Struct, frozen=True, kw_only=True):
    endpoint: str
    api_key: str
    track: str
    gtx_header: str
    stx_header: str
    encoding: Encoding = "hex"
    timeout: float = 30.0  # one call, connect to last byte
    connect_timeout: float = 10.0
    # iTEP not reached, or a 5xx: the order waits in these delay tiers, then fails.
    retry_delays: tuple[float, ...] = (10.0, 60.0, 300.0, 1800.0, 7200.0)
    relay_interval: float = 0.5  # how often order changes are looked for, to publish

    def __repr__(self) -> str:  # the API key stays out of logs and tracebacks
        return (
            f"FulfillmentSettings(endpoint={self.endpoint!r}, track={self.track!r}, "
            f"gtx_header={self.gtx_header!r}, stx_header={self.stx_header!r}, encoding={self.encoding!r})"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "FulfillmentSettings":
        d = cls(endpoint="", api_key="", track="", gtx_header="", stx_header="")
        # Every variable is read before any is judged, so that --help lists them all.
        names = ("ENDPOINT", "TRACK", "SIGNATURE_HEADER_GTX", "SIGNATURE_HEADER_STX")
        given = {name: env_str(env, f"RESULTBUS_ITEP_{name}", "").strip() for name in names}
        key_env = env_str(env, "RESULTBUS_ITEP_API_KEY_ENV", "ITEP_API_KEY")
        encoding = env_str(env, "RESULTBUS_ITEP_SIGNATURE_ENCODING", d.encoding)
        timeout = env_duration(env, "RESULTBUS_ITEP_TIMEOUT", d.timeout, minimum=0.01)
        connect = env_duration(env, "RESULTBUS_ITEP_CONNECT_TIMEOUT", d.connect_timeout, minimum=0.01)
        delays = env_durations(env, "RESULTBUS_ITEP_RETRY_DELAYS", d.retry_delays)
        relay = env_duration(env, "RESULTBUS_ITEP_RELAY_INTERVAL", d.relay_interval, minimum=0.01)
        for name, value in given.items():
            if not value:
                raise SettingError(f"RESULTBUS_ITEP_{name}: not set (see docs/itep-orders.md)")
        endpoint = given["ENDPOINT"]
        if not endpoint.startswith(("https://", "http://")):
            raise SettingError(f"RESULTBUS_ITEP_ENDPOINT: expected an http(s) URL, got {endpoint!r}")
        api_key = env.get(key_env, "")
        if not api_key:
            raise SettingError(
                f"RESULTBUS_ITEP_API_KEY_ENV: environment variable {key_env} (the iTEP API key) is not set"
            )
        if encoding not in ("hex", "base64"):
            raise SettingError(f"RESULTBUS_ITEP_SIGNATURE_ENCODING: expected hex or base64, got {encoding!r}")
        if any(delay < 0.001 for delay in delays):
            raise SettingError("RESULTBUS_ITEP_RETRY_DELAYS: every delay must be at least 1ms")
        return cls(
            endpoint=endpoint,
            api_key=api_key,
            track=given["TRACK"],
            gtx_header=given["SIGNATURE_HEADER_GTX"],
            stx_header=given["SIGNATURE_HEADER_STX"],
            encoding="hex" if encoding == "hex" else "base64",
            timeout=timeout,
            connect_timeout=connect,
            retry_delays=delays,
            relay_interval=relay,
        )
