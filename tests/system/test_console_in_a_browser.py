"""The console in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
Playwright, against the console on a real listener over a running router. Signs in, finds the exam a
test webhook created, opens its history, replays a rejected webhook and sees its new outcome, and
checks that a <script> in a webhook body stays text. Screenshots land in docs/console/ when
RESULTBUS_CONSOLE_SCREENSHOTS=1 (how docs/console.md's were made)."""

import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from admin.console import auth
from devkit import samples
from schemas.topology import Topology
from schemas.vendor import Vendor
from tests.support.console_world import BEARER, TOKEN, ConsoleWorld, console_world
from tests.support.paths import ROOT

CHROMIUM = os.environ.get("RESULTBUS_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "docs" / "console"


def _why_not() -> str | None:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


if (_reason := _why_not()) is not None:
    print(f"browser tests skipped: {_reason}")
    pytest.skip(_reason, allow_module_level=True)

from playwright.async_api import Browser, Page, async_playwright, expect  # noqa: E402

SCRIPT = "<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def world(
    amqp_url: str, database_url: str, topology: Topology, db_schema: str
) -> AsyncIterator[ConsoleWorld]:
    async with console_world(amqp_url, database_url, topology, db_schema) as running:
        yield running


async def shot(page: Page, name: str) -> None:
    if os.environ.get("RESULTBUS_CONSOLE_SCREENSHOTS") == "1":
        SHOTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


async def test_an_operator_finds_an_exam_reads_its_history_and_replays_a_rejected_webhook(
    world: ConsoleWorld, browser: Browser
) -> None:
    # A webhook with a script in a field, and another the router rejects (a Synap event not named).
    itep_body, itep_type = samples.itep_urlencoded(
        samples.itep("Complete", test_id="BROWSER1TEST", OID="cand-5150", Writing_Answer_1=SCRIPT)
    )
    good = samples.envelope(Vendor.ITEP, itep_body, content_type=itep_type, source="itep-main")
    unnamed = samples.synap_released()
    del unnamed["meta"]["eventName"]
    bad = samples.envelope(Vendor.SYNAP, samples.as_json(unnamed), source="synap-main")
    await world.router.publish_raw(good)
    await world.router.publish_raw(bad)
    await world.router.raw_stored(2)
    await world.router.events(1)

    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    errors: list[Any] = []

    def on_error(error: Any) -> None:
        errors.append(error)

    page.on("pageerror", on_error)
    # What the browser itself reports (a resource refused, a script blocked by the CSP): nothing is
    # expected but the 401 of the sign-in with the wrong token.
    console_errors: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            console_errors.append(f"{message.text} at {message.location.get('url')}")

    page.on("console", on_console)

    # Signing in: the console sends a stranger to the login form, and back where they were going.
    await page.goto(world.base + "/console/exams")
    await expect(page.locator("h1")).to_have_text("Sign in to the console")
    await shot(page, "login")
    await page.fill("#token", "not-the-token-0123456789")
    await page.click("button[type=submit]")
    await expect(page.locator("#error")).to_have_text("That is not the token.")
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Find an exam")
    [cookie] = [c for c in await context.cookies() if c["name"] == "resultbus_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # Overview.
    await page.click("text=Overview")
    await expect(page.locator("#received")).to_contain_text("itep")
    await shot(page, "overview")

    # Find the exam by the candidate's external id (iTEP OID), then open its history.
    await page.click("text=Find an exam")
    await page.select_option("select[name=by]", "external_id")
    await page.fill("input[name=q]", "cand-5150")
    await page.click("#search button")
    await page.click("#found >> text=BROWSER1TEST")
    await expect(page.locator("h1")).to_contain_text("BROWSER1TEST")
    await expect(page.locator("#state")).to_contain_text("completed")
    await page.click("details.raw summary")
    raw = page.locator("pre.body").first
    await expect(raw).to_contain_text('"Writing_Answer_1": "<script>window.__pwned = 1</script><img src=x')
    await shot(page, "exam")
    # Shown as text: neither the script nor the image's handler ran, and no element was made of them.
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("main script, main img").count() == 0

    # The rejected webhook: listed with its reason, replayed once the source is "fixed".
    await page.click("text=Rejected")
    row = page.locator("#rejected tr", has_text="synap-main")
    await expect(row).to_contain_text("no event name")
    await shot(page, "rejected")
    await world.router.pool.execute(
        "UPDATE raw_webhooks SET vendor_event = 'exam.resultsReleased' WHERE id = $1", bad.id
    )
    await row.locator("input[name=id]").check()
    await page.click("#replay-selected")
    await expect(page.locator("h1")).to_have_text("Replayed 1 webhook")
    await expect(page.locator("#outcomes .outcome")).to_have_text("accepted")
    await shot(page, "replayed")
    await page.click("text=Rejected")
    await expect(page.locator("#rejected")).to_contain_text("No rejected webhook")

    # Subscriptions page renders too (for the guide's screenshot).
    await page.click("text=Subscriptions")
    await expect(page.locator("h1")).to_have_text("Subscriptions")
    await shot(page, "subscriptions")

    # Signing out ends the session.
    await page.click("text=Sign out")
    await expect(page.locator("h1")).to_have_text("Sign in to the console")
    await page.goto(world.base + "/console/")
    await expect(page.locator("h1")).to_have_text("Sign in to the console")
    assert errors == []
    assert [e for e in console_errors if "status of 401" not in e or not e.endswith("/console/login")] == []
    await context.close()


async def test_disabling_asks_first_and_a_session_that_ended_comes_back_to_the_page(
    world: ConsoleWorld, browser: Browser
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            world.base + "/v1/subscriptions",
            json={"url": "http://127.0.0.1:9/hook", "description": "school of examples"},
            headers=BEARER,
        ) as response,
    ):
        subscription_id = (await response.json())["subscription"]["id"]
    page_url = f"{world.base}/console/subscriptions/{subscription_id}"
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    await page.goto(page_url)
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_contain_text("school of examples")

    # Disable asks first; Cancel leaves it as it was.
    await page.click("#disable")
    await expect(page.locator("h1")).to_have_text("Disable school of examples?")
    await page.click("#cancel")
    await expect(page.locator("h1")).to_contain_text("(active)")

    # The session ends while the confirmation is open (a cookie as the console signs them, expired).
    await page.click("#disable")
    _, expired = auth.Sessions(TOKEN).issue(authenticated=True, now=time.time() - auth.SESSION_SECONDS - 60)
    await context.add_cookies(
        [{"name": auth.COOKIE, "value": expired, "domain": "127.0.0.1", "path": "/console"}]
    )
    await page.click("#confirm-disable")
    await expect(page.locator("#error")).to_contain_text("Your session has ended")
    await page.click("#sign-in")
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    # Back where the operator was, and nothing was disabled meanwhile.
    assert page.url == page_url
    await expect(page.locator("h1")).to_contain_text("(active)")
    await page.click("#disable")
    await page.click("#confirm-disable")
    await expect(page.locator("#done")).to_contain_text("Disabled")
    await context.close()
