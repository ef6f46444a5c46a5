"""docs/asyncapi.yaml is generated from the Structs, is current, and is valid AsyncAPI 3.0 by the
AsyncAPI CLI's own validator."""

import os
import subprocess
from pathlib import Path

import msgspec
import yaml

from schemas.asyncapi import asyncapi_document
from schemas.delivery import DELIVERY_FAILED_KEY, SUBSCRIPTION_DISABLED_KEY, SUBSCRIPTION_UNSUBSCRIBED_KEY
from schemas.event import ResultEvent
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.tools import ROOT, require

DOCUMENT = ROOT / "docs" / "asyncapi.yaml"


def test_published_asyncapi_is_current() -> None:
    published = yaml.safe_load(DOCUMENT.read_text())
    assert published == asyncapi_document(), "docs/asyncapi.yaml is stale: run `make schema`"


def test_it_names_the_exchange_routing_keys_and_operational_events() -> None:
    doc = asyncapi_document(Topology(prefix="acme"))
    channels = doc["channels"]
    assert channels["resultEvents"]["address"] == "{vendor}.{type}"
    assert channels["resultEvents"]["parameters"]["vendor"]["enum"] == [v.value for v in Vendor]
    addresses = {c["address"] for c in channels.values()}
    assert {DELIVERY_FAILED_KEY, SUBSCRIPTION_DISABLED_KEY, SUBSCRIPTION_UNSUBSCRIBED_KEY} <= addresses
    for channel in channels.values():
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "acme.results"
    assert all(op["action"] == "send" for op in doc["operations"].values())


def test_the_examples_are_what_the_structs_decode() -> None:
    # The document's example is a real event: it decodes with the consumers' own decoder.
    example = asyncapi_document()["components"]["messages"]["resultEvent"]["examples"][0]["payload"]
    event = msgspec.json.decode(msgspec.json.encode(example), type=ResultEvent)
    assert event.vendor is Vendor.ITEP


def _validate(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cli = require("asyncapi", local=".tools/node_modules/.bin/asyncapi")
    env = {
        **os.environ,
        # The CLI's telemetry: off (and never a call outside 127.0.0.1).
        "CI": "true",
        "ASYNCAPI_METRICS_CONFIG_PATH": str(tmp_path / "asyncapi-analytics.json"),
    }
    (tmp_path / "asyncapi-analytics.json").write_text(
        '{"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "test"}'
    )
    return subprocess.run(
        [cli, "validate", str(path), "--fail-severity", "warn"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_asyncapi_cli_validates_the_document(tmp_path: Path) -> None:
    done = _validate(DOCUMENT, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is valid" in done.stdout


def test_asyncapi_cli_rejects_a_broken_document(tmp_path: Path) -> None:
    # The check can fail: a message pointing at a schema that does not exist is refused.
    broken = asyncapi_document()
    broken["components"]["messages"]["resultEvent"]["payload"] = {"$ref": "#/components/schemas/Nope"}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    done = _validate(path, tmp_path)
    assert done.returncode != 0, done.stdout
