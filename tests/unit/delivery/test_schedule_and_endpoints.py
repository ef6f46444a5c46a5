"""Pure parts of delivery, without I/O: schedule and tiers, Retry-After, endpoint normalization,
address policy, signatures (checked with standardwebhooks) and settings."""

import random
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from common.env import SettingError, parse_durations
from subscribers.endpoint import InvalidEndpoint, normalize_endpoint
from subscribers.poster import parse_retry_after
from subscribers.schedule import Schedule
from subscribers.signing import InvalidSecret, generate_secret, secret_key, webhook_headers
from subscribers.ssrf import is_forbidden
from workers.delivery.settings import DeliverySettings


def test_default_schedule_and_tiers() -> None:
    settings = DeliverySettings.from_env({})
    assert settings.schedule.delays == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert settings.schedule.tiers_ms() == [1000, 5000, 300000, 1800000, 7200000, 18000000, 36000000]
    assert parse_durations("0, 500ms, 5s, 5m, 2h") == (0, 0.5, 5, 300, 7200)


def test_next_delay_jitter_retry_after_and_exhaustion() -> None:
    schedule = Schedule((0, 10, 100), jitter=0.1)
    rng = random.Random(1)
    for _ in range(50):
        delay = schedule.next_delay(0, None, rng)
        assert delay is not None and 9 <= delay <= 10
    assert schedule.next_delay(0, 60, rng) == 60
    assert schedule.next_delay(2, None, rng) is None
    assert (
        schedule.tier_for(60) == 10_000
        and schedule.tier_for(0.1) == 1000
        and schedule.tier_for(500) == 100_000
    )


def test_a_jittered_retry_makes_one_trip_through_its_tier() -> None:
    schedule = DeliverySettings.from_env({}).schedule
    rng = random.Random(7)
    for step in range(schedule.attempts - 1):
        for _ in range(200):
            delay = schedule.next_delay(step, None, rng)
            assert delay is not None
            tier = schedule.tier_to_wait(delay)
            # Due when it comes back, and late by no more than the jitter's spread.
            assert delay * 1000 <= tier <= delay * 1000 / (1 - schedule.jitter) + 1
    assert schedule.tier_to_wait(4.6) == 5_000 and schedule.tier_to_wait(280) == 300_000


def test_a_wait_far_from_any_tier_still_goes_to_the_longest_not_longer() -> None:
    schedule = Schedule((0, 5, 300), jitter=0.1)
    assert schedule.tier_to_wait(4.4) == 1_000  # 5 s would be 14 % late: back early, then again
    assert schedule.tier_to_wait(60) == 5_000 and schedule.tier_to_wait(0.3) == 1_000
    assert Schedule((0, 5), jitter=0.0).tier_to_wait(4.6) == 1_000  # no jitter: never late


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now) == 60
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("HTTPS://Hooks.Example.com:443/a?b=1", "https://hooks.example.com/a?b=1"),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("http://[::1]:80/x", "http://[::1]/x"),
    ],
)
def test_endpoint_normalization(given: str, normalized: str) -> None:
    assert normalize_endpoint(given) == normalized


@pytest.mark.parametrize("url", ["ftp://x/y", "http://", "http://u:p@x/", "http://x/#f", "http://x:99999/"])
def test_endpoint_refusals(url: str) -> None:
    with pytest.raises(InvalidEndpoint):
        normalize_endpoint(url)


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("127.0.0.1", True),
        ("10.0.0.1", True),
        ("172.16.5.4", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("::1", True),
        ("fe80::1", True),
        ("::ffff:10.0.0.1", True),
        ("0.0.0.0", True),
        ("2002:7f00:1::1", True),  # 6to4 around 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", True),  # Teredo around 127.0.0.1
        ("2002:5db8:d822::1", False),  # 6to4 around a public address
        ("93.184.216.34", False),
        ("2606:4700::1111", False),
    ],
)
def test_address_policy(address: str, forbidden: bool) -> None:
    assert is_forbidden(address) is forbidden


def test_signatures_verify_with_standardwebhooks_including_rotation() -> None:
    old, new = generate_secret(), generate_secret()
    body = b'{"id":"e1"}'
    headers = webhook_headers([secret_key(new), secret_key(old)], "e1", int(time.time()), body)
    assert Webhook(old).verify(body, headers) == {"id": "e1"}
    assert Webhook(new).verify(body, headers) == {"id": "e1"}
    with pytest.raises(Exception, match="signature"):
        Webhook(generate_secret()).verify(body, headers)


@pytest.mark.parametrize("secret", ["abc", "whsec_!!!", "whsec_AAAA"])
def test_bad_secrets(secret: str) -> None:
    with pytest.raises(InvalidSecret):
        secret_key(secret)


def test_bad_settings_name_the_variable() -> None:
    with pytest.raises(SettingError, match="RESULTBUS_DELIVERY_SCHEDULE"):
        DeliverySettings.from_env({"RESULTBUS_DELIVERY_SCHEDULE": "0,soon"})
    with pytest.raises(SettingError, match="RESULTBUS_ALLOW_PRIVATE_ENDPOINTS"):
        DeliverySettings.from_env({"RESULTBUS_ALLOW_PRIVATE_ENDPOINTS": "maybe"})
    assert DeliverySettings.from_env({"RESULTBUS_ALLOW_PRIVATE_ENDPOINTS": "1"}).allow_private
