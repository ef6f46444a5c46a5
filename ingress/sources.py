"""The sources file: one `[[source]]` per vendor integration (iTEP calls it a tracking code).

Loaded once at start-up. Every secret is given by the names of environment variables (several for
rotation) and resolved here, once; a missing one stops the process at boot. Every problem raises
`SourceConfigError` naming the source and the field; no message ever contains a secret value.
"""

import base64
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final

import msgspec

from common import logs
from ingress.auth import (
    Authenticator,
    BasicAuth,
    HeaderTokenAuth,
    InsperaSignatureAuth,
    NoAuth,
    SecretSet,
    TestpressHashAuth,
)
from schemas.vendor import Vendor
from vendors import SPECS

DEFAULT_MAX_BODY_BYTES: Final = 256 * 1024

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SourceConfigError(Exception):
    """The sources file is unusable; the message names the source and the field."""


# --- the file as written -------------------------------------------------------------------------

EnvNames = Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]], msgspec.Meta(min_length=1)]


class _Config(msgspec.Struct, forbid_unknown_fields=True, tag_field="kind"):
    pass


class BasicConfig(_Config, tag="basic"):
    username: str
    password_env: EnvNames


class HeaderTokenConfig(_Config, tag="header_token"):
    header: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")]
    token_env: EnvNames


class InsperaSignatureConfig(_Config, tag="inspera_signature"):
    secret_env: EnvNames


class TestpressHashConfig(_Config, tag="testpress_hash"):
    __test__ = False
    private_key_env: EnvNames
    public_key: str | None = None


class NoAuthConfig(_Config, tag="none"):
    pass


AuthConfig = BasicConfig | HeaderTokenConfig | InsperaSignatureConfig | TestpressHashConfig | NoAuthConfig


class SourceConfig(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100)]
    vendor: Vendor
    auth: AuthConfig
    max_body_bytes: Annotated[int, msgspec.Meta(gt=0)] = DEFAULT_MAX_BODY_BYTES
    allow_ips: list[str] = []
    event: Annotated[str, msgspec.Meta(min_length=1)] | None = None


# --- the resolved source, as the app uses it -----------------------------------------------------


class Source(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    vendor: Vendor
    authenticator: Authenticator
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allow_ips: tuple[IpNetwork, ...] = ()
    # Synap only: the event this URL receives (Synap sends one event per URL).
    event: str | None = None

    def allows(self, remote: str | None) -> bool:
        if not self.allow_ips:
            return True
        if remote is None:
            return False
        try:
            address = ipaddress.ip_address(remote)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow_ips)


# --- loading -------------------------------------------------------------------------------------


def load_sources(path: str | Path, env: Mapping[str, str]) -> dict[str, Source]:
    """Read, validate and resolve the sources file; the result maps source id to source."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SourceConfigError(f"cannot read sources file {str(path)!r}: {exc.strerror}") from None
    return parse_sources(data, env)


def parse_sources(data: bytes | str, env: Mapping[str, str]) -> dict[str, Source]:
    try:
        document = msgspec.toml.decode(data)
    except msgspec.DecodeError as exc:
        raise SourceConfigError(f"not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"source"})
    if unknown:
        raise SourceConfigError(f"unknown top-level key {unknown[0]!r} (expected [[source]] tables)")
    entries = document.get("source", [])
    if not isinstance(entries, list) or not entries:
        raise SourceConfigError("no [[source]] table: at least one source is required")
    sources: dict[str, Source] = {}
    for index, entry in enumerate(entries):
        source = _resolve(_decode_entry(index, entry), env)
        if source.id in sources:
            raise SourceConfigError(f"source {source.id!r}: field 'id': duplicate id")
        sources[source.id] = source
    return sources


def _label(index: int, entry: object) -> str:
    source_id = entry.get("id") if isinstance(entry, dict) else None
    return f"source {source_id!r}" if isinstance(source_id, str) else f"source #{index + 1}"


_VALIDATION = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `(?P<name>[^`]+)`")


def _decode_entry(index: int, entry: object) -> SourceConfig:
    try:
        return msgspec.convert(entry, SourceConfig)
    except msgspec.ValidationError as exc:
        match = _VALIDATION.match(str(exc))
        assert match is not None  # the pattern matches any text
        problem, path = match["problem"], (match["path"] or "").lstrip(".")
        named = _NAMED_FIELD.match(problem)
        if named:
            path = f"{path}.{named['name']}" if path else named["name"]
        field = path or "(table)"
        raise SourceConfigError(f"{_label(index, entry)}: field {field!r}: {problem}") from None


def _resolve(config: SourceConfig, env: Mapping[str, str]) -> Source:
    where = f"source {config.id!r}"
    spec = SPECS[config.vendor]
    kind = str(config.auth.__struct_config__.tag)
    if kind not in spec.auth_kinds:
        raise SourceConfigError(
            f"{where}: field 'auth.kind': {kind!r} is not allowed "
            f"for vendor {config.vendor.value} (allowed: {' | '.join(sorted(spec.auth_kinds))})"
        )
    if spec.event_per_url and config.event is None:
        raise SourceConfigError(f"{where}: field 'event': required for vendor {config.vendor.value}")
    if not spec.event_per_url and config.event is not None:
        raise SourceConfigError(
            f"{where}: field 'event': only for vendors that send one event per URL "
            f"({', '.join(v.value for v, s in SPECS.items() if s.event_per_url)})"
        )
    networks: list[IpNetwork] = []
    for cidr in config.allow_ips:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=True))
        except ValueError as exc:
            raise SourceConfigError(f"{where}: field 'allow_ips': {exc}") from None
    return Source(
        id=config.id,
        vendor=config.vendor,
        authenticator=_authenticator(where, config.auth, env),
        max_body_bytes=config.max_body_bytes,
        allow_ips=tuple(networks),
        event=config.event,
    )


def _authenticator(where: str, auth: AuthConfig, env: Mapping[str, str]) -> Authenticator:
    def secrets(field: str, names: list[str]) -> SecretSet:
        values = []
        for name in names:
            value = env.get(name)
            if value is None:
                raise SourceConfigError(
                    f"{where}: field 'auth.{field}': environment variable {name} is not set"
                )
            if not value:
                raise SourceConfigError(
                    f"{where}: field 'auth.{field}': environment variable {name} is empty"
                )
            values.append(value.encode("utf-8", "surrogateescape"))
        # Where secrets enter the process: from here on no library's log line may hold one.
        logs.redact_values(v.decode("utf-8", "replace") for v in values)
        return SecretSet(tuple(names), tuple(values))

    match auth:
        case BasicConfig(username=username, password_env=names):
            passwords = secrets("password_env", names)
            # And as a Basic credential travels: base64 of `username:password`.
            logs.redact_values(
                base64.b64encode(username.encode() + b":" + password).decode()
                for password in passwords.values
            )
            return BasicAuth(username, passwords)
        case HeaderTokenConfig(header=header, token_env=names):
            return HeaderTokenAuth(header, secrets("token_env", names))
        case InsperaSignatureConfig(secret_env=names):
            return InsperaSignatureAuth(secrets("secret_env", names))
        case TestpressHashConfig(private_key_env=names, public_key=public_key):
            return TestpressHashAuth(secrets("private_key_env", names), public_key)
        case NoAuthConfig():
            return NoAuth()
    raise AssertionError(f"unhandled auth config {type(auth).__name__}")
