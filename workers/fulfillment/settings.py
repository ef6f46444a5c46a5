"""Fulfillment worker settings, read once from the environment; a bad or missing one stops the boot.

iTEP does not publish the name of the header that carries the signature, nor its encoding (its
page says only that the header's *key* directs processing, and that the GTX and STX calls differ in
that header alone): both are settings, one header name per product-code group, to be had from iTEP.
"""

from collections.abc import Mapping
from typing import Literal

import msgspec

from common.env import Group, SettingError, choice, duration, durations, required_text, text
from common.settings import BROKER_AND_DATABASE

Encoding = Literal["hex", "base64"]

ENDPOINT = required_text(
    "RESULTBUS_ITEP_ENDPOINT", help="iTEP's API endpoint, an http(s) URL; see docs/itep-orders.md"
)
TRACK = required_text(
    "RESULTBUS_ITEP_TRACK", help="your tracking code, assigned by iTEP; see docs/itep-orders.md"
)
HEADER_GTX = required_text(
    "RESULTBUS_ITEP_SIGNATURE_HEADER_GTX",
    help="the signature header for GTX codes, from iTEP; see docs/itep-orders.md",
)
HEADER_STX = required_text(
    "RESULTBUS_ITEP_SIGNATURE_HEADER_STX",
    help="the signature header for STX codes, from iTEP; see docs/itep-orders.md",
)
API_KEY_ENV = text(
    "RESULTBUS_ITEP_API_KEY_ENV", "ITEP_API_KEY", help="the variable holding the API key (never logged)"
)
ENCODING = choice(
    "RESULTBUS_ITEP_SIGNATURE_ENCODING", "hex", ("hex", "base64"), help="hex (lowercase) or base64"
)
TIMEOUT = duration("RESULTBUS_ITEP_TIMEOUT", 30.0, minimum=0.01, help="one call, connect to last byte")
CONNECT_TIMEOUT = duration(
    "RESULTBUS_ITEP_CONNECT_TIMEOUT", 10.0, minimum=0.01, help="a call not connected by then is retried"
)
# iTEP not reached, or a 5xx: the order waits in these delay tiers, then fails.
RETRY_DELAYS = durations(
    "RESULTBUS_ITEP_RETRY_DELAYS",
    (10.0, 60.0, 300.0, 1800.0, 7200.0),
    help="the delay tiers; after the last, failed",
)
RELAY_INTERVAL = duration(
    "RESULTBUS_ITEP_RELAY_INTERVAL",
    0.5,
    minimum=0.01,
    help="how often order changes are looked for, to publish",
)

SETTINGS = (
    BROKER_AND_DATABASE,
    Group(
        "iTEP fulfillment",
        (
            ENDPOINT,
            API_KEY_ENV,
            TRACK,
            HEADER_GTX,
            HEADER_STX,
            ENCODING,
            TIMEOUT,
            CONNECT_TIMEOUT,
            RETRY_DELAYS,
            RELAY_INTERVAL,
        ),
    ),
)


class FulfillmentSettings(msgspec.Struct, frozen=True, kw_only=True):
    endpoint: str
    api_key: str
    track: str
    gtx_header: str
    stx_header: str
    encoding: Encoding = "hex"
    timeout: float = TIMEOUT.default  # one call, connect to last byte
    connect_timeout: float = CONNECT_TIMEOUT.default
    retry_delays: tuple[float, ...] = RETRY_DELAYS.default
    relay_interval: float = RELAY_INTERVAL.default  # how often order changes are looked for, to publish

    def __repr__(self) -> str:  # the API key stays out of logs and tracebacks
        return (
            f"FulfillmentSettings(endpoint={self.endpoint!r}, track={self.track!r}, "
            f"gtx_header={self.gtx_header!r}, stx_header={self.stx_header!r}, encoding={self.encoding!r})"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "FulfillmentSettings":
        # The values given are judged before the ones missing: a typo is named even on a half-set-up host.
        encoding = ENCODING.read(env)
        timeout, connect = TIMEOUT.read(env), CONNECT_TIMEOUT.read(env)
        delays, relay = RETRY_DELAYS.read(env), RELAY_INTERVAL.read(env)
        if any(delay < 0.001 for delay in delays):
            raise SettingError("RESULTBUS_ITEP_RETRY_DELAYS: every delay must be at least 1ms")
        endpoint = ENDPOINT.read(env)
        if not endpoint.startswith(("https://", "http://")):
            raise SettingError(f"RESULTBUS_ITEP_ENDPOINT: expected an http(s) URL, got {endpoint!r}")
        track, gtx, stx = TRACK.read(env), HEADER_GTX.read(env), HEADER_STX.read(env)
        key_env = API_KEY_ENV.read(env)
        api_key = env.get(key_env, "")
        if not api_key:
            raise SettingError(
                f"RESULTBUS_ITEP_API_KEY_ENV: environment variable {key_env} (the iTEP API key) is not set"
            )
        return cls(
            endpoint=endpoint,
            api_key=api_key,
            track=track,
            gtx_header=gtx,
            stx_header=stx,
            encoding="hex" if encoding == "hex" else "base64",
            timeout=timeout,
            connect_timeout=connect,
            retry_delays=delays,
            relay_interval=relay,
        )
