"""The operator console's handlers on a real listener, over a running router, the real broker and
database: signing in, CSRF, every page, finding an exam, replaying a rejected webhook, the
subscription actions, and that vendor and subscriber values are escaped and secrets never shown."""

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
from yarl import URL

from admin.console import auth
from devkit import samples
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.console_world import BEARER, TOKEN, ConsoleWorld, console_world, csrf_of, get, sign_in

SCRIPT = "<script>window.__pwned = 1</script>"


async def seed(world: ConsoleWorld) -> dict[str, str]:
    """An iTEP result whose body carries a script, and a Synap webhook the router rejects."""
    itep_body, itep_type = samples.itep_urlencoded(
        samples.itep("Complete", test_id="CONSOLE1TEST", OID="cand-4711", Writing_Answer_1=SCRIPT)
    )
    good = samples.envelope(Vendor.ITEP, itep_body, content_type=itep_type, source="itep-main")
    unnamed = samples.synap_released()
    del unnamed["meta"]["eventName"]
    bad = samples.envelope(Vendor.SYNAP, samples.as_json(unnamed))
    await world.router.publish_raw(good)
    await world.router.publish_raw(bad)
    await world.router.raw_stored(2)
    await world.router.events(1)
    return {"good": good.id, "bad": bad.id}


async def test_signing_in_sets_a_strict_http_only_cookie_and_sign_out_ends_it(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    async with http.get(world.base + "/console/exams?q=x", allow_redirects=False) as response:
        assert response.status == 303
        location = URL(response.headers["Location"])
        assert location.path == "/console/login" and location.query["next"] == "/console/exams?q=x"
    status, html = await get(http, world.base + "/console/login")
    form = {"csrf": csrf_of(html), "next": "/console/exams"}
    # The wrong token: refused, no session.
    async with http.post(
        world.base + "/console/login", data={**form, "token": "wrong-token-0123456789"}
    ) as r:
        assert r.status == 401 and "That is not the token" in await r.text()
    # No CSRF token (a form posted from elsewhere): refused before the token is even looked at.
    async with http.post(world.base + "/console/login", data={"token": TOKEN}, allow_redirects=False) as r:
        assert r.status == 403
    async with http.post(
        world.base + "/console/login", data={**form, "token": TOKEN}, allow_redirects=False
    ) as response:
        assert response.status == 303 and response.headers["Location"] == "/console/exams"
        cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http on loopback; see the https test below
    assert TOKEN not in cookie
    status, html = await get(http, world.base + "/console/")
    assert status == 200 and "Overview" in html
    # The console's session opens the console only, not the JSON API.
    status, _ = await get(http, world.base + "/v1/subscriptions")
    assert status == 401
    async with http.post(
        world.base + "/console/logout", data={"csrf": csrf_of(html)}, allow_redirects=False
    ) as response:
        assert response.status == 303
    async with http.get(world.base + "/console/", allow_redirects=False) as response:
        assert response.status == 303


async def test_the_icon_is_served_to_anyone_and_every_page_links_it(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    # A browser asks for /favicon.ico by itself, with no credentials: an icon, not a 401.
    async with aiohttp.ClientSession() as stranger, stranger.get(world.base + "/favicon.ico") as response:
        assert response.status == 200 and response.content_type == "image/x-icon"
        icon = await response.read()
    assert icon[:4] == b"\x00\x00\x01\x00" and b"PNG" in icon[:40]  # an ICO holding a PNG
    status, html = await get(http, world.base + "/console/login")
    assert status == 200 and '<link rel="icon" href="/favicon.ico">' in html
    # Public means the icon only: the API beside it still wants the token.
    status, _ = await get(http, world.base + "/v1/subscriptions")
    assert status == 401


async def test_cookie_is_secure_over_https_and_a_forged_or_stolen_back_cookie_is_refused(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    # Behind a proxy that ends TLS. The client's jar holds back Secure cookies over plain http: sent by hand.
    https = {"X-Forwarded-Proto": "https"}
    async with http.get(world.base + "/console/login", headers=https) as response:
        assert "Secure" in response.headers["Set-Cookie"]
        anonymous = response.cookies["resultbus_console"].value
        html = await response.text()
    async with http.post(
        world.base + "/console/login",
        data={"csrf": csrf_of(html), "token": TOKEN, "next": "https://evil.example.com/"},
        headers={**https, "Cookie": f"resultbus_console={anonymous}"},
        allow_redirects=False,
    ) as response:
        assert "Secure" in response.headers["Set-Cookie"]
        assert response.headers["Location"] == "/console/"  # never off to another site
        value = response.cookies["resultbus_console"].value
    nonce_and_mac = value.split(".")
    forged = ".".join([*nonce_and_mac[:2], str(int(nonce_and_mac[2]) + 86400), *nonce_and_mac[3:]])
    async with aiohttp.ClientSession() as other:
        for cookie in (forged, value[:-2] + "xx", "v1.x.9999999999.a.y"):
            async with other.get(
                world.base + "/console/",
                headers={"Cookie": f"resultbus_console={cookie}"},
                allow_redirects=False,
            ) as response:
                assert response.status == 303, cookie
        async with other.get(
            world.base + "/console/", headers={"Cookie": f"resultbus_console={value}"}, allow_redirects=False
        ) as response:
            assert response.status == 200


async def test_forms_need_the_session_csrf_token_and_a_same_site_origin(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    ids = await seed(world)
    csrf = await sign_in(world, http)
    url = world.base + "/console/rejected/replay"
    for data, headers, says in (
        ({"id": ids["bad"]}, {}, "made for an earlier sign-in"),
        ({"id": ids["bad"], "csrf": "not-the-token"}, {}, "made for an earlier sign-in"),
        (
            {"id": ids["bad"], "csrf": csrf, "back": "/console/rejected?source=synap-main"},
            {"Origin": "https://evil.example.com"},
            "your browser says this form was sent from a page of another web site"
            " (https://evil.example.com), not from this console",
        ),
    ):
        async with http.post(url, data=data, headers=headers, allow_redirects=False) as response:
            assert response.status == 403
            html = await response.text()
            assert says in html and "nothing was done" in html, html
    # The refusal offers the way back to the page the form was on.
    assert 'href="/console/rejected?source=synap-main" id="back"' in html
    # Nothing was replayed: the row is as the router left it.
    stored = await world.router.pool.fetchval("SELECT stored_at FROM raw_webhooks WHERE id = $1", ids["bad"])
    await asyncio.sleep(0.3)
    assert (
        await world.router.pool.fetchval("SELECT stored_at FROM raw_webhooks WHERE id = $1", ids["bad"])
        == stored
    )
    # Without a session or the token, a form is refused outright.
    async with (
        aiohttp.ClientSession() as stranger,
        stranger.post(url, data={"id": ids["bad"], "csrf": csrf}, allow_redirects=False) as response,
    ):
        assert response.status == 401


async def test_a_form_sent_after_the_session_ended_leads_back_there_after_signing_in(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    ids = await seed(world)
    stored = await world.router.pool.fetchval("SELECT stored_at FROM raw_webhooks WHERE id = $1", ids["bad"])
    csrf = await sign_in(world, http)
    # A cookie signed as the console signs them, expired an hour ago: the session of a tab left open.
    _, expired = auth.Sessions(TOKEN).issue(authenticated=True, now=time.time() - auth.SESSION_SECONDS - 3600)
    http.cookie_jar.update_cookies({auth.COOKIE: expired}, URL(world.base + "/console/"))
    back = "/console/rejected?source=synap-main"
    async with http.post(
        world.base + "/console/rejected/replay", data={"csrf": csrf, "id": ids["bad"], "back": back}
    ) as response:
        assert response.status == 401
        html = await response.text()
    assert "Your session has ended" in html and "was not done" in html
    found = re.search(r'<a href="([^"]+)" id="sign-in">Sign in again</a>', html)
    assert found is not None
    sign_in_at = found[1].replace("&amp;", "&")
    assert URL(sign_in_at).query["next"] == back
    # Signing in again there lands on the page the form was on.
    status, html = await get(http, world.base + sign_in_at)
    assert status == 200 and f'name="next" value="{back}"' in html.replace("&amp;", "&")
    async with http.post(
        world.base + "/console/login",
        data={"csrf": csrf_of(html), "token": TOKEN, "next": back},
        allow_redirects=False,
    ) as response:
        assert response.status == 303 and response.headers["Location"] == back
    # Nothing was replayed: the webhook is as the router left it.
    assert (
        await world.router.pool.fetchval("SELECT stored_at FROM raw_webhooks WHERE id = $1", ids["bad"])
        == stored
    )
    # A `back` that leaves the console is not followed.
    async with (
        aiohttp.ClientSession() as stale,
        stale.post(
            world.base + "/console/rejected/replay",
            data={"id": ids["bad"], "back": "https://evil.example.com/"},
            headers={"Cookie": f"{auth.COOKIE}={expired}"},
        ) as response,
    ):
        assert response.status == 401 and "next=%2Fconsole%2F" in await response.text()


async def test_every_page_renders_for_the_bearer_token_with_security_headers(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    ids = await seed(world)
    for path in (
        "/console/",
        "/console/exams?by=test_id&q=CONSOLE1TEST",
        "/console/exam?vendor=itep&key=CONSOLE1TEST",
        f"/console/webhooks/{ids['good']}",
        f"/console/webhooks/{ids['bad']}",
        "/console/rejected",
        "/console/dead",
        "/console/subscriptions",
    ):
        async with http.get(world.base + path, headers=BEARER, allow_redirects=False) as response:
            html = await response.text()
            assert response.status == 200, (path, html)
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
            assert response.headers["Cache-Control"] == "no-store"
            assert response.headers["X-Frame-Options"] == "DENY"


async def test_an_exam_is_found_by_external_id_test_id_and_key_with_its_history_escaped(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    ids = await seed(world)
    for query in ("by=external_id&q=cand-4711", "by=test_id&q=CONSOLE1TEST", "by=key&q=CONSOLE1TEST"):
        status, html = await get(http, f"{world.base}/console/exams?{query}", headers=BEARER)
        assert status == 200 and "/console/exam?vendor=itep&amp;key=CONSOLE1TEST" in html, query
    status, html = await get(http, f"{world.base}/console/exams?by=external_id&q=cand-0000", headers=BEARER)
    assert "No exam found" in html
    # Vendor and key given: straight to the exam.
    async with http.get(
        f"{world.base}/console/exams?by=key&vendor=itep&q=CONSOLE1TEST", headers=BEARER, allow_redirects=False
    ) as response:
        assert response.status == 303 and response.headers["Location"].startswith("/console/exam?vendor=itep")
    status, html = await get(http, f"{world.base}/console/exam?vendor=itep&key=CONSOLE1TEST", headers=BEARER)
    assert status == 200
    assert "completed" in html and ids["good"] in html and "cand-4711" in html
    # The body's script is text on the page, never markup.
    assert "window.__pwned" in html and SCRIPT not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    status, _ = await get(http, f"{world.base}/console/exam?vendor=itep&key=NOPE", headers=BEARER)
    assert status == 404


async def test_a_rejected_webhook_replayed_after_the_fix_shows_its_new_outcome(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    ids = await seed(world)
    csrf = await sign_in(world, http)
    status, html = await get(http, world.base + "/console/rejected")
    assert status == 200 and ids["bad"] in html
    # Replayed as is: still rejected, under the same id, with the reason shown.
    async with http.post(
        world.base + "/console/rejected/replay", data={"csrf": csrf, "id": ids["bad"]}
    ) as response:
        html = await response.text()
        assert response.status == 200 and response.url.path == "/console/replayed"
    assert "rejected" in html and "waiting for the router" not in html
    # The "fix" (as a corrected source would give): replayed again, now accepted.
    await world.router.pool.execute(
        "UPDATE raw_webhooks SET vendor_event = 'exam.resultsReleased' WHERE id = $1", ids["bad"]
    )
    async with http.post(
        world.base + "/console/rejected/replay", data={"csrf": csrf, "id": ids["bad"]}
    ) as response:
        html = await response.text()
    assert re.search(r'class="accepted outcome">accepted<', html), html
    status, html = await get(http, world.base + "/console/rejected")
    assert ids["bad"] not in html and "No rejected webhook" in html
    status, html = await get(http, f"{world.base}/console/webhooks/{ids['bad']}")
    assert 'id="outcome">accepted<' in html
    # "Replay all" of nothing left asks first, says so, and offers nothing to confirm.
    async with http.post(
        world.base + "/console/rejected/replay", data={"csrf": csrf, "all": "1"}
    ) as response:
        html = await response.text()
        assert "Replay 0 rejected webhooks?" in html and "Nothing matches" in html
        assert 'id="confirm-replay"' not in html
    async with http.post(world.base + "/console/rejected/replay", data={"csrf": csrf}) as response:
        assert response.status == 400 and "nothing selected" in await response.text()


async def test_subscription_pages_escape_subscriber_values_hide_secrets_and_act(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    pool = world.router.pool
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
    async with http.post(
        world.base + "/v1/subscriptions",
        json={"url": "http://127.0.0.1:9/hook", "description": f"school {SCRIPT}", "secret": secret},
        headers=BEARER,
    ) as response:
        assert response.status == 201
        subscription_id = (await response.json())["subscription"]["id"]
    # A failed delivery whose error text is the subscriber's, script and all.
    event_id = str(uuid.uuid4())
    delivery_id = str(uuid.uuid4())
    await pool.execute(
        "INSERT INTO deliveries (id, subscription_id, event_id, event_type, status, attempts, last_status,"
        " last_error) VALUES ($1, $2, $3, 'completed', 'failed', 1, 500, $4)",
        delivery_id,
        subscription_id,
        event_id,
        f"HTTP 500: {SCRIPT}",
    )
    await pool.execute(
        "INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status_code, latency_ms, error, outcome)"
        " VALUES ($1, 1, now(), 500, 12.5, $2, 'failed')",
        delivery_id,
        f"HTTP 500: {SCRIPT}",
    )
    csrf = await sign_in(world, http)
    page = f"{world.base}/console/subscriptions/{subscription_id}"
    for url in (world.base + "/console/subscriptions", page):
        status, html = await get(http, url)
        assert status == 200
        assert SCRIPT not in html and "&lt;script&gt;" in html
        assert secret not in html and secret[6:20] not in html and "whsec_QUJD" not in html
    status, html = await get(http, world.base + "/console/subscriptions")
    assert "0.0%" in html  # one finished delivery, failed
    status, html = await get(http, page)
    assert "HTTP 500" in html and "failing since" in html.lower()

    async def act(path: str, **data: str) -> str:
        async with http.post(f"{page}/{path}", data={"csrf": csrf, **data}) as response:
            assert response.status == 200, await response.text()
            return await response.text()

    # Disabling asks first, saying what it means; nothing changes until it is confirmed.
    html = await act("status", status="disabled")
    assert "Disable school" in html and 'id="confirm-disable"' in html and "are cancelled" in html
    assert await pool.fetchval("SELECT status FROM subscriptions WHERE id = $1", subscription_id) == "active"
    assert "Disabled: nothing is delivered" in await act("status", status="disabled", confirm="1")
    assert (
        await pool.fetchval("SELECT status FROM subscriptions WHERE id = $1", subscription_id) == "disabled"
    )
    assert "enable it first" in await act_fails(http, f"{page}/replay", csrf, since="2024-01-01T00:00")
    assert "Enabled" in await act("status", status="active")
    new_secret = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    html = await act("rotate", secret=new_secret, overlap_hours="1")
    assert "New secret added" in html and new_secret not in html
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM subscription_secrets WHERE subscription_id = $1", subscription_id
        )
        == 2
    )
    assert "secret:" in await act_fails(http, f"{page}/rotate", csrf, secret="not-a-secret")
    # Replaying failed deliveries whose event is not stored queues nothing (as the API does).
    assert "queued again: 0" in await act(
        "replay", since=(datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    )


async def act_fails(http: aiohttp.ClientSession, url: str, csrf: str, **data: str) -> str:
    async with http.post(url, data={"csrf": csrf, **data}) as response:
        assert response.status == 400
        return await response.text()


async def test_overview_counts_webhooks_and_shows_queue_depths(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    await seed(world)
    status, html = await get(http, world.base + "/console/", headers=BEARER)
    assert status == 200
    assert re.search(r"<td>itep</td><td class=\"accepted\">accepted</td><td class=\"num\">1</td>", html)
    assert re.search(r"<td>synap</td><td class=\"rejected\">rejected</td><td class=\"num\">1</td>", html)
    assert "1 rejected webhooks</a> in the last day" in html
    topology = world.router.settings.topology
    assert (
        topology.raw_queue in html
        and topology.dead_queue in html
        and topology.delivery_attempts_queue in html
    )
    assert '<rect class="accepted"' in html and '<rect class="rejected"' in html


async def test_overview_says_which_worker_roles_are_not_running_and_scales_its_chart(
    world: ConsoleWorld, http: aiohttp.ClientSession
) -> None:
    await seed(world)
    # A subscribed endpoint whose check fell due an hour ago, with no checker to make it.
    async with http.post(
        world.base + "/v1/subscriptions", json={"url": "http://127.0.0.1:9/hook"}, headers=BEARER
    ) as response:
        assert response.status == 201
    await world.router.pool.execute("UPDATE endpoints SET next_check_at = now() - interval '1 hour'")
    status, html = await get(http, world.base + "/console/", headers=BEARER)
    assert status == 200
    roles = dict(re.findall(r"<tr><td>([a-z]+)</td><td class=\"[a-z]+\">([^<]+)</td></tr>", html))
    topology = world.router.settings.topology
    # The router of this world consumes the raw queue; no delivery worker or checker runs.
    assert roles["router"].startswith("running: 1 consumer"), roles
    assert roles["delivery"].startswith(f"not running: {topology.deliveries_queue} is not declared"), roles
    assert roles["checker"].startswith("not running (or far behind): checks were due 1h ago"), roles
    assert "the last check was never" in roles["checker"]
    assert re.search(r'<td class="bad">not running: [^<]*itep', html)  # fulfillment, same way
    # The chart has a scale: its lines labelled from 0 to a round top, said in words too.
    # (One webhook accepted and one rejected: in this hour, unless the seed straddled its end.)
    peak = await world.router.pool.fetchval(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM raw_webhooks GROUP BY date_trunc('hour', received_at)) h"
    )
    assert re.findall(r'<text class="scale"[^>]*>([0-9,]+)</text>', html) == (
        ["0", "1", "2"] if peak == 2 else ["0", "1"]
    )
    assert f"scale 0 to {peak}; the busiest hour had {peak}" in html


async def test_without_authentication_configured_the_console_is_open_but_forms_still_need_csrf(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str, http: aiohttp.ClientSession
) -> None:
    async with console_world(amqp_url, database_url, topology, db_schema, token=None) as open_world:
        status, html = await get(http, open_world.base + "/console/")
        assert status == 200 and "Overview" in html
        async with http.post(open_world.base + "/console/dead/replay", data={"which": "raw"}) as response:
            assert response.status == 403
        async with http.post(
            open_world.base + "/console/dead/replay", data={"which": "raw", "csrf": csrf_of(html)}
        ) as response:
            assert response.status == 200 and "Moved 0 raw dead letter" in await response.text()
