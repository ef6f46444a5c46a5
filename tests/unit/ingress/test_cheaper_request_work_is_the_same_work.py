"""What the ingress's cheaper per-request work must still be: the same log lines, the same metric
series, the same signatures and ids as the slower ways it replaced wrote, accepted or made."""

import hmac
import io
import json
import logging
import os
import re
import uuid
from collections.abc import Callable

import msgspec
import prometheus_client
import pytest
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from common import logs
from ingress import ids
from ingress.auth import InsperaSignatureAuth, SecretSet, TestpressHashAuth, signed_message
from ingress.errors import AuthError
from ingress.metrics import BUCKETS, RequestMetrics


def _structlog_chain_lines(role: str, write: Callable[[], None]) -> list[dict[str, object]]:
    """The lines structlog's own processors wrote before _JsonLine replaced them."""
    out = io.StringIO()
    encoder = msgspec.json.Encoder(enc_hook=str)
    structlog.configure(
        processors=[
            logs._Role(role),
            logs._merge_context,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=lambda e, **_: encoder.encode(e).decode()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=logs._LineWriterFactory(out),
        cache_logger_on_first_use=False,
    )
    try:
        write()
    finally:
        structlog.reset_defaults()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _configured_lines(role: str, write: Callable[[], None]) -> list[dict[str, object]]:
    out = io.StringIO()
    logs.configure_logging("INFO", json=True, stream=out, role=role)
    try:
        write()
    finally:
        structlog.reset_defaults()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _some_lines() -> None:
    log = structlog.get_logger("speed-test")
    hot = logs.HotLogger("speed-test")
    with logs.bound(webhook_id="w-1", source="inspera-main", role="from-context"):
        log.info("request", method="POST", status=200, duration_ms=1.5, thing=object)
        hot.log(logging.WARNING, "request", {"method": "POST", "status": 401, "detail": "wrong"})
        hot.log(logging.DEBUG, "request", {"status": 200})  # below INFO: not written
        log.warning("explicit role", role="given")
        log.bind(extra="bound").info("with the logger's own context")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed", x=1)


def test_json_lines_are_those_structlogs_own_chain_wrote_key_for_key_in_order() -> None:
    before = _structlog_chain_lines("ingress", _some_lines)
    after = _configured_lines("ingress", _some_lines)
    assert len(after) == len(before) == 5
    for old, new in zip(before, after, strict=True):
        old_time, new_time = old.pop("timestamp"), new.pop("timestamp")
        assert list(new.items()) == list(old.items())
        # The same shape of time: ISO 8601 in UTC with a Z.
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", str(new_time)), new_time
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", str(old_time)), old_time
    assert after[1]["level"] == "warning" and after[1]["detail"] == "wrong"
    assert "ValueError: boom" in str(after[4]["exception"])


def test_a_hot_line_goes_to_a_tests_captured_logs_too() -> None:
    logs.configure_logging("INFO", json=True, stream=io.StringIO())
    try:
        with structlog.testing.capture_logs() as captured:
            logs.HotLogger("speed-test").log(logging.INFO, "request", {"status": 200})
    finally:
        structlog.reset_defaults()
    assert captured == [{"status": 200, "event": "request", "log_level": "info"}]


def test_the_request_metrics_are_the_series_prometheus_clients_own_would_export() -> None:
    theirs = CollectorRegistry()
    counter = Counter(
        "resultbus_ingress_requests",
        "Webhook calls answered, by source and status.",
        ["source", "status"],
        registry=theirs,
    )
    histogram = Histogram(
        "resultbus_ingress_request_seconds",
        "Time to answer a webhook call, broker confirm included.",
        buckets=BUCKETS,
        registry=theirs,
    )
    ours, metrics = CollectorRegistry(), RequestMetrics()
    ours.register(metrics)
    # On a bound, between two, beyond the last, zero.
    for source, status, seconds in [("a", 200, 0.001), ("a", 200, 0.0026), ("-", 404, 7.0), ("b", 401, 0.0)]:
        counter.labels(source, str(status)).inc()
        histogram.observe(seconds)
        metrics.answered(source, status)
        metrics.took(seconds)

    def text(registry: CollectorRegistry) -> str:
        return re.sub(r"_created(\{[^}]*\})? \S+", r"_created\1 T", generate_latest(registry).decode())

    assert text(ours) == text(theirs)
    assert ours.get_sample_value("resultbus_ingress_request_seconds_bucket", {"le": "0.001"}) == 2.0


def test_the_ingress_metrics_are_in_the_default_registry() -> None:
    from ingress import middleware  # noqa: F401  (what the ingress imports)

    text = generate_latest(prometheus_client.REGISTRY).decode()
    assert "# TYPE resultbus_ingress_requests_total counter" in text
    assert "# TYPE resultbus_ingress_request_seconds histogram" in text


def test_a_kept_hmac_state_signs_each_body_as_a_fresh_key_would() -> None:
    secrets = SecretSet(("OLD", "NEW"), (b"old-secret", b"new-secret"))
    auth = InsperaSignatureAuth(secrets)
    for body in (b'{"a":1}', b"", b'{"a":2}' * 500, b'{"a":1}'):
        for secret in (b"old-secret", b"new-secret"):
            auth.check({"X-Inspera-Signature": hmac.digest(secret, body, "sha1").hex()}, body)
        # A signature of another body, or with another key, is still refused after the state was used.
        with pytest.raises(AuthError):
            auth.check({"X-Inspera-Signature": hmac.digest(b"old-secret", body + b" ", "sha1").hex()}, body)
        with pytest.raises(AuthError):
            auth.check({"X-Inspera-Signature": hmac.digest(b"other", body, "sha1").hex()}, body)


def test_a_kept_hmac_state_checks_testpress_hashes_as_before() -> None:
    fields = ("pk", "7", "3", "1", "0", "75.0", "3", "42")
    auth = TestpressHashAuth(SecretSet(("K",), (b"private",)), public_key="pk")
    good = hmac.digest(b"private", signed_message(fields, "private", percent_encode=False), "sha512").hex()
    names = ("key", "attempt_id", "correct_answers_count", "incorrect_answers_count")
    names += ("unanswered_answers_count", "percentage", "score", "user_id")
    body = dict(zip(names, fields, strict=True))
    auth.check({}, json.dumps({**body, "hash": good}).encode())
    auth.check({}, json.dumps({**body, "hash": good}).encode())
    with pytest.raises(AuthError):
        auth.check({}, json.dumps({**body, "score": "4", "hash": good}).encode())


def test_webhook_ids_are_version_4_uuids_as_str_uuid4_writes_them_and_never_repeat() -> None:
    made = [ids.new_webhook_id() for _ in range(3 * 256 + 7)]  # across several refills
    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)
    # Every variant digit occurs: the variant bits are set, the other two stay random.
    assert {text[19] for text in made} == set("89ab")


def test_a_forked_child_makes_ids_of_its_own() -> None:
    ids.new_webhook_id()  # the parent holds a batch
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, to the parent
        os.close(read)
        os.write(write, ids.new_webhook_id().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert uuid.UUID(child_id).version == 4
    assert child_id not in ids._pool
