"""The sources file: the example loads, every kind of mistake names its source and field, and no
secret value ever shows up in a repr or a message."""

import ipaddress
from pathlib import Path

import pytest

from ingress.auth import BasicAuth, HeaderTokenAuth, InsperaSignatureAuth, NoAuth, TestpressHashAuth
from ingress.sources import DEFAULT_MAX_BODY_BYTES, Source, SourceConfigError, load_sources, parse_sources
from schemas.vendor import Vendor
from tests.support.paths import ROOT
from tests.support.sources import FULL, FULL_ENV

EXAMPLE = ROOT / "deploy" / "sources.example.toml"

EXAMPLE_ENV = {
    "RESULTBUS_DEMO_ITEP_PASSWORD": "itep-pass-s3cret",
    "RESULTBUS_DEMO_ITEP_TOKEN": "itep-token-s3cret",
    "RESULTBUS_DEMO_INSPERA_SECRET": "inspera-s3cret",
    "RESULTBUS_DEMO_SYNAP_PASSWORD": "synap-pass-s3cret",
    "RESULTBUS_DEMO_TESTPRESS_KEY": "testpress-s3cret",
}


def test_example_file_loads_one_source_per_vendor() -> None:
    sources = load_sources(EXAMPLE, EXAMPLE_ENV)
    assert {s.vendor for s in sources.values()} == set(Vendor)
    kinds = {source_id: type(s.authenticator) for source_id, s in sources.items()}
    assert kinds == {
        "itep-demo": BasicAuth,
        "itep-demo-token": HeaderTokenAuth,
        "inspera-demo": InsperaSignatureAuth,
        "synap-demo-results": BasicAuth,
        "testpress-demo": TestpressHashAuth,
    }
    synap = sources["synap-demo-results"]
    assert synap.event == "exam.resultsReleased"
    assert all(s.max_body_bytes == DEFAULT_MAX_BODY_BYTES and s.allow_ips == () for s in sources.values())


def test_no_secret_in_repr_or_str() -> None:
    sources = load_sources(EXAMPLE, EXAMPLE_ENV)
    for text in (repr(sources), str(sources), *(repr(s) for s in sources.values())):
        assert "s3cret" not in text
    assert "RESULTBUS_DEMO_ITEP_PASSWORD" in repr(sources["itep-demo"])


def test_options_and_rotation() -> None:
    sources = parse_sources(FULL, FULL_ENV)
    synap = sources["synap-main"]
    assert isinstance(synap.authenticator, NoAuth)
    assert synap.max_body_bytes == 1024
    assert synap.allow_ips == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
    assert "ITEP_ACME_PASSWORD_NEXT" in repr(sources["itep-acme"])


def test_ip_allowlist() -> None:
    synap = parse_sources(FULL, FULL_ENV)["synap-main"]
    assert synap.allows("127.0.0.1")
    assert synap.allows("::ffff:127.0.0.5")  # IPv4 caller on a dual-stack socket
    assert synap.allows("2001:db8::1")
    assert not synap.allows("10.1.2.3")
    assert not synap.allows(None)
    assert not synap.allows("not-an-ip")
    anyone = parse_sources(FULL, FULL_ENV)["itep-acme"]
    assert anyone.allows("203.0.113.9") and anyone.allows(None)


def one_source(body: str) -> str:
    return "[[source]]\n" + body


def expect_error(text: str, env: dict[str, str], *fragments: str) -> str:
    with pytest.raises(SourceConfigError) as caught:
        parse_sources(text, env)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "s3cret" not in message
    return message


def test_missing_env_var_names_source_field_and_variable() -> None:
    message = expect_error(FULL, {"ITEP_ACME_PASSWORD_NEXT": "p2-s3cret"}, "")
    assert message == (
        "source 'itep-acme': field 'auth.password_env': environment variable ITEP_ACME_PASSWORD is not set"
    )


def test_synap_needs_event() -> None:
    text = one_source('id = "synap-main"\nvendor = "synap"\n[source.auth]\nkind = "none"\n')
    assert expect_error(text, {}) == "source 'synap-main': field 'event': required for vendor synap"


@pytest.mark.parametrize(
    ("text", "env", "fragments"),
    [
        ("this is = = not toml", {}, ("not valid TOML",)),
        ("", {}, ("at least one source",)),
        ("[other]\nx = 1\n", {}, ("unknown top-level key 'other'",)),
        (
            one_source('id = "x1"\nvendor = "pearson"\n[source.auth]\nkind = "none"\n'),
            {},
            ("source 'x1'", "field 'vendor'", "pearson"),
        ),
        (
            one_source('id = "Bad Id"\nvendor = "synap"\nevent = "e"\n[source.auth]\nkind = "none"\n'),
            {},
            ("source 'Bad Id'", "field 'id'"),
        ),
        (
            one_source('vendor = "synap"\nevent = "e"\n[source.auth]\nkind = "none"\n'),
            {},
            ("source #1", "field 'id'", "missing"),
        ),
        (
            one_source('id = "itep-x"\nvendor = "itep"\n[source.auth]\nkind = "none"\n'),
            {},
            ("source 'itep-x'", "field 'auth.kind'", "'none' is not allowed for vendor itep"),
        ),
        (
            one_source(
                'id = "ins"\nvendor = "inspera"\n[source.auth]\nkind = "basic"\n'
                'username = "u"\npassword_env = ["P"]\n'
            ),
            {"P": "p-s3cret"},
            ("source 'ins'", "field 'auth.kind'", "inspera_signature"),
        ),
        (
            one_source('id = "tp"\nvendor = "testpress"\n[source.auth]\nkind = "hmac"\n'),
            {},
            ("source 'tp'", "field 'auth.kind'", "'hmac'"),
        ),
        (
            one_source('id = "tp"\nvendor = "testpress"\n[source.auth]\nprivate_key_env = ["K"]\n'),
            {"K": "k-s3cret"},
            ("source 'tp'", "field 'auth.kind'", "missing"),
        ),
        (
            one_source(
                'id = "tp"\nvendor = "testpress"\n[source.auth]\nkind = "testpress_hash"\n'
                "private_key_env = []\n"
            ),
            {},
            ("source 'tp'", "field 'auth.private_key_env'"),
        ),
        (
            one_source(
                'id = "tp"\nvendor = "testpress"\n[source.auth]\nkind = "testpress_hash"\n'
                'private_key_env = ["K"]\nprivat_key = "typo"\n'
            ),
            {"K": "k-s3cret"},
            ("source 'tp'", "field 'auth.privat_key'", "unknown"),
        ),
        (
            one_source(
                'id = "tp"\nvendor = "testpress"\nevent = "x"\n[source.auth]\n'
                'kind = "testpress_hash"\nprivate_key_env = ["K"]\n'
            ),
            {"K": "k-s3cret"},
            ("source 'tp'", "field 'event'", "only for vendors that send one event per URL (synap)"),
        ),
        (
            one_source(
                'id = "tp"\nvendor = "testpress"\n[source.auth]\nkind = "testpress_hash"\n'
                'private_key_env = ["K"]\n'
            ),
            {"K": ""},
            ("source 'tp'", "field 'auth.private_key_env'", "K is empty"),
        ),
        (
            one_source(
                'id = "s"\nvendor = "synap"\nevent = "e"\nallow_ips = ["10.0.0.300/8"]\n'
                '[source.auth]\nkind = "none"\n'
            ),
            {},
            ("source 's'", "field 'allow_ips'", "10.0.0.300/8"),
        ),
        (
            one_source(
                'id = "s"\nvendor = "synap"\nevent = "e"\nallow_ips = ["10.0.0.1/8"]\n'
                '[source.auth]\nkind = "none"\n'
            ),
            {},
            ("source 's'", "field 'allow_ips'", "host bits"),
        ),
        (
            one_source(
                'id = "s"\nvendor = "synap"\nevent = "e"\nmax_body_bytes = 0\n[source.auth]\nkind = "none"\n'
            ),
            {},
            ("source 's'", "field 'max_body_bytes'"),
        ),
        (
            one_source('id = "s"\nvendor = "synap"\nevent = "e"\n[source.auth]\nkind = "none"\n')
            + one_source('id = "s"\nvendor = "synap"\nevent = "f"\n[source.auth]\nkind = "none"\n'),
            {},
            ("source 's'", "field 'id'", "duplicate"),
        ),
        (
            one_source(
                'id = "h"\nvendor = "itep"\n[source.auth]\nkind = "header_token"\n'
                'header = "Bad Header:"\ntoken_env = ["T"]\n'
            ),
            {"T": "t-s3cret"},
            ("source 'h'", "field 'auth.header'"),
        ),
    ],
)
def test_config_errors_name_source_and_field(
    text: str, env: dict[str, str], fragments: tuple[str, ...]
) -> None:
    expect_error(text, env, *fragments)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="cannot read sources file"):
        load_sources(tmp_path / "missing.toml", {})


def test_source_is_frozen() -> None:
    source: Source = parse_sources(FULL, FULL_ENV)["itep-acme"]
    with pytest.raises(AttributeError):
        source.id = "other"  # type: ignore[misc]
