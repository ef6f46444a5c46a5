"""The console's pure parts: session cookies and CSRF tokens, bodies shown with credentials hidden,
the overview chart's geometry, and names it shares with the workers."""

import json
from datetime import UTC, datetime, timedelta

from admin.console import auth, display, roles
from admin.console.queues import Depth
from admin.console.serving import safe_next
from admin.settings import AdminSettings
from devkit import samples
from subscribers.schedule import Schedule
from workers.delivery.settings import DeliverySettings
from workers.router.settings import RouterSettings

TOKEN = "unit-test-token-0123456789"


def test_a_session_cookie_is_accepted_until_it_expires_or_is_revoked() -> None:
    sessions = auth.Sessions(TOKEN)
    session, cookie = sessions.issue(authenticated=True, now=1000)
    assert sessions.read(cookie, now=1001) == session and session.authenticated
    assert sessions.read(cookie, now=1000 + auth.SESSION_SECONDS) is None
    sessions.revoke(session, now=1001)
    assert sessions.read(cookie, now=1002) is None


def test_a_cookie_signed_with_another_token_or_altered_is_refused() -> None:
    _, cookie = auth.Sessions(TOKEN).issue(authenticated=True, now=1000)
    assert auth.Sessions("another-token-0123456789").read(cookie, now=1001) is None
    sessions = auth.Sessions(TOKEN)
    assert sessions.read(cookie, now=1001) is not None  # any process with the same token accepts it
    version, nonce, expires, kind, mac = cookie.split(".")
    for altered in (
        f"{version}.{nonce}.{int(expires) + 1}.{kind}.{mac}",
        f"{version}.{nonce}.{expires}.{'n' if kind == 'a' else 'a'}.{mac}",
        f"{version}.{nonce[::-1]}.{expires}.{kind}.{mac}",
        "garbage",
        "",
    ):
        assert sessions.read(altered, now=1001) is None, altered


def test_an_anonymous_session_is_not_signed_in_and_csrf_tokens_are_per_session() -> None:
    sessions = auth.Sessions(TOKEN)
    anonymous, cookie = sessions.issue(authenticated=False, now=1000)
    read = sessions.read(cookie, now=1001)
    assert read is not None and not read.authenticated
    other, _ = sessions.issue(authenticated=True, now=1000)
    assert sessions.csrf_matches(anonymous, sessions.csrf(anonymous))
    assert not sessions.csrf_matches(anonymous, sessions.csrf(other))
    assert not sessions.csrf_matches(anonymous, "")
    assert TOKEN not in cookie and TOKEN not in sessions.csrf(anonymous)


def test_the_token_is_compared_whole() -> None:
    sessions = auth.Sessions(TOKEN)
    assert sessions.token_matches(TOKEN)
    assert not sessions.token_matches(TOKEN[:-1]) and not sessions.token_matches(TOKEN + "x")
    assert sessions.bearer_matches(f"Bearer {TOKEN}") and not sessions.bearer_matches(TOKEN)
    assert auth.Sessions(None).open and not auth.Sessions(None).bearer_matches(f"Bearer {TOKEN}")


def test_after_login_only_console_paths_of_this_site() -> None:
    assert safe_next("/console/exams?q=a") == "/console/exams?q=a"
    for elsewhere in (
        "https://evil.example.com/console/",
        "//evil.example.com/console",
        "/v1/exams",
        None,
        "",
    ):
        assert safe_next(elsewhere) == "/console/"


def test_json_bodies_are_pretty_with_credential_fields_hidden() -> None:
    body = json.dumps({"key": "Pub", "hash": "abc123", "nested": [{"api_key": "k", "Password": "p"}], "n": 1})
    shown = display.show_body(body.encode(), "application/json")
    assert "abc123" not in shown and '"k"' not in shown and '"p"' not in shown
    assert '"key": "Pub"' in shown and '"n": 1' in shown and shown.count(display.HIDDEN) == 3


def test_form_and_multipart_bodies_hide_credential_fields() -> None:
    shown = display.show_body(b"data=%7B%7D&token=s3cr3t", "application/x-www-form-urlencoded")
    assert shown == "data = {}\ntoken = " + display.HIDDEN
    multipart = b'--b\r\nContent-Disposition: form-data; name="secret"\r\n\r\nhush\r\n--b--\r\n'
    assert "hush" not in display.show_body(multipart, "multipart/form-data; boundary=b")


def test_a_cut_or_undecodable_body_is_shown_as_text_and_says_so() -> None:
    shown = display.show_body(b'{"a": "\xff', "application/json", size=5000)
    assert "\ufffd" in shown and "first 8 of 5000 bytes" in shown


def test_the_chart_stacks_rejected_on_accepted_per_hour_on_a_round_scale() -> None:
    now = datetime(2024, 6, 10, 12, 30, tzinfo=UTC)
    hour = now.replace(minute=0)
    chart = display.hourly_chart(
        [
            (hour, "accepted", 30),
            (hour, "rejected", 10),
            (hour - timedelta(hours=2), "accepted", 20),
            (hour - timedelta(hours=30), "accepted", 999),
        ],  # outside the 24 hours
        now,
        width=280,
        height=100,
        left=40,
    )
    # The peak is 40 an hour; the scale goes to the round 50, with its lines labelled.
    assert (chart.peak, chart.top) == (40, 50)
    assert chart.ticks == [(100.0, "0"), (50.0, "25"), (0.0, "50")]
    last = [b for b in chart.bars if b.hour.startswith("2024-06-10 12")]
    accepted, rejected = sorted(last, key=lambda b: b.outcome)
    assert (accepted.height, rejected.height) == (60.0, 20.0)
    assert rejected.y == 20.0 and accepted.y == 40.0 and accepted.x == 40 + 23 * 10 + 1
    assert [b.count for b in chart.bars if b.hour.startswith("2024-06-10 10")] == [20]
    assert len(chart.bars) == 3


def test_the_scale_tops_at_a_round_number() -> None:
    assert [display.nice_top(n) for n in (0, 1, 2, 3, 7, 10, 11, 40, 51, 999, 1001)] == [
        1, 1, 2, 5, 10, 10, 20, 50, 100, 1000, 2000,
    ]  # fmt: skip
    assert display.hourly_chart([], datetime(2024, 6, 10, tzinfo=UTC)).ticks[-1][1] == "1"


def test_a_role_is_not_running_when_nothing_consumes_its_queues_or_checks_fall_due() -> None:
    now = datetime(2024, 6, 10, 12, tzinfo=UTC)
    depths = [
        Depth("raw", "p.raw", 3, 0, "router"),
        Depth("delivery", "p.deliveries", None, None, "delivery"),
        Depth("delivery", "p.delivery.attempts", 0, 0, "delivery"),
        Depth("itep orders", "p.itep.orders", 0, 1, "fulfillment"),
        Depth("itep fulfillment", "p.itep.fulfillment", 2, 1, "fulfillment"),
    ]
    overdue = {"endpoints": 2, "last_checked_at": None, "next_check_at": now - timedelta(hours=1)}
    states = {r.role: r for r in roles.role_states(depths, overdue, now)}
    assert (
        states["router"].state == "not running"
        and "nothing consumes p.raw: 3 messages waiting" in states["router"].says
    )
    assert (
        states["delivery"].state == "not running"
        and "p.deliveries is not declared" in states["delivery"].says
    )
    assert (
        states["fulfillment"].state == "running"
        and "2 consumers, 2 messages waiting" in states["fulfillment"].says
    )
    assert states["checker"].state == "not running"
    assert "due 1h ago" in states["checker"].says and "the last check was never" in states["checker"].says
    assert states["retention"].state == "unknown"
    on_time = {
        "endpoints": 2,
        "last_checked_at": now - timedelta(hours=1),
        "next_check_at": now + timedelta(hours=7),
    }
    assert roles.checker_role(on_time, now).state == "running"
    assert (
        roles.checker_role({"endpoints": 0, "last_checked_at": None, "next_check_at": None}, now).state
        == "unknown"
    )
    assert roles.consuming_role("router", []).state == "unknown"  # no broker connection


def test_the_console_names_the_delay_tiers_as_the_workers_do() -> None:
    base = {"RESULTBUS_ADMIN_NO_AUTH": "1"}
    for env in ({}, {"RESULTBUS_DELIVERY_SCHEDULE": "0,1s,2m", "RESULTBUS_DELIVERY_PARK": "500ms"}):
        admin = AdminSettings.from_env({**base, **env})
        assert admin.delivery_schedule.tiers_ms() == DeliverySettings.from_env(env).schedule.tiers_ms()
    assert AdminSettings.from_env(
        {**base, "RESULTBUS_DELIVERY_SCHEDULE": "0,1s,2m"}
    ).delivery_schedule.tiers_ms() == (Schedule((0, 1, 120)).tiers_ms())
    env = {"RESULTBUS_RETRY_DELAYS": "1s,1m"}
    assert (
        AdminSettings.from_env({**base, **env}).raw_retry_delays == RouterSettings.from_env(env).retry_delays
    )


def test_a_json_form_field_is_shown_pretty_with_its_credentials_hidden() -> None:
    body = b"data=" + json.dumps({"OID": "cand-1", "api_key": "k3y"}).encode().replace(b" ", b"+")
    shown = display.show_body(body, "application/x-www-form-urlencoded")
    assert '"OID": "cand-1"' in shown and "k3y" not in shown and display.HIDDEN in shown


def test_a_multipart_body_is_shown_as_the_urlencoded_one_is() -> None:
    data = {"TestID": "3279B035APR", "OID": "cand-0042", "api_key": "k3y"}
    form, form_type = samples.itep_urlencoded(data)
    multipart, multipart_type = samples.itep_multipart(data)
    shown = display.show_body(multipart, multipart_type)
    assert shown == display.show_body(form, form_type)
    assert shown.startswith('data = {\n  "TestID": "3279B035APR",') and "k3y" not in shown
    # Two fields, one of them a credential; a body that does not parse is shown as text, redacted.
    two = (
        b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        b'--b\r\nContent-Disposition: form-data; name="token"\r\n\r\ns3cr3t\r\n--b--\r\n'
    )
    assert (
        display.show_body(two, "multipart/form-data; boundary=b") == f"note = hello\ntoken = {display.HIDDEN}"
    )
    assert display.show_body(b"not multipart", "multipart/form-data; boundary=b") == "not multipart"
