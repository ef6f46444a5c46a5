"""The operator console's handlers on a real listener, over a running router, the real broker and
database: signing in, CSRF, every page, finding an exam, replaying a rejected webhook, the
subscription actions, and that vendor and subscriber values are escaped and secrets never shown."""

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from devkit import samples
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.console_world import BEARER, TOKEN, ConsoleWorld, console_world

SCRIPT = "<script>window.__pwned = 1</script>"


@pytest.fixture
async def world(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> AsyncIterator[ConsoleWorld]:
    async with console_world(amqp_url, database_url, topology, db_schema) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: the jar keeps cookies of an IP address (127.0.0.1).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no CSRF field in the page"
    return found[1]


async def get(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, str]:
    async with http.get(url, **kwargs) as response:
        return response.status, await response.text()


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


async def sign_in(world: ConsoleWorld, http: aiohttp.ClientSession) -> str:
    """Signs in with the login form; returns the CSRF token of the new session."""
    status, html = await get(http, world.base + "/console/login")
    assert status == 200
    async with http.post(
        world.base + "/console/login",
        data={"csrf": csrf_of(html), "token": TOKEN, "next": "/console/"},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/console/"
    status, html = await get(http, world.base + "/console/")
    assert status == 200
    return csrf_of(html)


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
    for data, headers in (
        ({"id": ids["bad"]}, {}),
        ({"id": ids["bad"], "csrf": "not-the-token"}, {}),
        ({"id": ids["bad"], "csrf": csrf}, {"Origin": "https://evil.example.com"}),
    ):
        async with http.post(url, data=data, headers=headers, allow_redirects=False) as response:
            assert response.status == 403
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
