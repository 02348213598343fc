"""The Telegram mini app in a real headless Chromium against the live server: the plain
sign-in, the figures and positions of a simulated account, a price moving on the next poll,
the liquidation countdown, a token refresh and the account switcher. Nothing leaves the
machine: every request to another origin (telegram.org's script) is aborted."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.db import connections
from django.utils import timezone

from guards.models import LiquidationEpisode
from pipeline import services
from positions.models import Position

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 10_000


def money(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}"


@pytest.fixture
def chromium(monkeypatch):
    if not CHROMIUM.exists():
        reason = f"the mini app browser test needs Chromium at {CHROMIUM}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; the test's own ORM
    # calls are plain synchronous code all the same. While that loop runs, Django keeps its
    # connections per task, not per thread: the ones opened meanwhile are closed here, or
    # the test database could not be dropped at the end.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            connections.close_all()


def sync(*accounts) -> None:
    outcome = services.accounts_sync(account_ids=[a.pk for a in accounts])
    assert not outcome.skipped


def test_page_headers(client, settings):
    settings.MINI_APP_POLL_SECONDS = 7
    response = client.get("/app/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-poll-seconds="7"' in html
    assert '<script src="https://telegram.org/js/telegram-web-app.js"></script>' in html
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">' in html
    assert "frame-ancestors 'self' https://web.telegram.org" in response[
        "Content-Security-Policy"]
    assert "X-Frame-Options" not in response  # Telegram's web client frames the page
    assert "no-cache" in response["Cache-Control"]
    assert client.post("/app/").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_mini_app_in_chromium(chromium, live_server, settings, sim_bridge, linked_account):
    from playwright.sync_api import expect

    settings.MINI_APP_POLL_SECONDS = 2
    account = linked_account(9601)
    other = linked_account(9602, currency="EUR", balance="5000")
    sim_bridge.sim("sim_open", 9601, "EURUSD", "buy", "0.10", magic=1)
    sim_bridge.sim("sim_open", 9601, "EURUSD", "sell", "0.20", magic=1)
    sync(account, other)
    account.refresh_from_db()
    positions = list(Position.objects.filter(account=account, status=Position.Status.OPEN))
    assert len(positions) == 2

    context = chromium.new_context(viewport={"width": 390, "height": 844},
                                   device_scale_factor=2, timezone_id="UTC", locale="en-GB")
    page = context.new_page()
    blocked: list[str] = []
    api_calls: list[tuple[int, str]] = []
    page_errors: list[str] = []

    def route(request_route) -> None:
        if request_route.request.url.startswith(live_server.url):
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.on("response", lambda r: "/api/" in r.url and api_calls.append((r.status, r.url)))

    # sign in with the form (no Telegram here: its script is blocked)
    page.goto(f"{live_server.url}/app/")
    assert any(url.startswith("https://telegram.org/js/telegram-web-app.js") for url in blocked)
    expect(page.locator("#login-form")).to_be_visible()
    page.fill("#username", "member")
    page.fill("#password", "wrong-password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
    page.fill("#password", "pw-member-1")
    page.click("#login-submit")

    # the primary account's figures, one row per open ticket, the curve, the switcher
    expect(page.locator("#balance")).to_have_text("10,000.00 USD", timeout=WAIT_MS)
    expect(page.locator("#login-form")).to_be_hidden()
    expect(page.locator("#equity")).to_have_text(money(account.equity, "USD"))
    expect(page.locator("#free-margin")).to_have_text(money(account.free_margin, "USD"))
    expect(page.locator("#margin-level")).to_have_text(f"{account.margin_level:,.2f} %")
    expect(page.locator("#drawdown")).to_have_text(f"{account.drawdown_percent:.2f} %")
    expect(page.locator("#sync-status")).to_have_attribute("data-status", "healthy")
    expect(page.locator("#sync-status")).to_contain_text("Live")
    expect(page.locator("#positions [data-ticket]")).to_have_count(2)
    for position in positions:
        row = page.locator(f'#positions [data-ticket="{position.ticket}"]')
        expect(row).to_have_count(1)
        expect(row.locator(".pnl")).to_have_class(
            re.compile("pnl-pos" if position.profit > 0 else
                       "pnl-neg" if position.profit < 0 else "pnl-zero"))
        assert Decimal(row.locator(".price-current").inner_text()) == position.price_current
    expect(page.locator("#equity-chart svg polyline.line-equity")).to_have_count(1)
    expect(page.locator("#equity-chart svg polyline.line-balance")).to_have_count(1)
    switcher = page.locator("#account-switcher")
    expect(switcher).to_be_visible()
    expect(switcher.locator("option")).to_have_count(2)
    expect(switcher).to_have_value(str(account.pk))
    expect(page.locator("#liquidation-banner")).to_be_hidden()

    # the price moves in the terminal; the next poll shows it
    watched = positions[0]
    price = page.locator(f'#positions [data-ticket="{watched.ticket}"] .price-current')
    old_price = price.inner_text()
    sim_bridge.sim("sim_advance", 3)
    sync(account)
    watched.refresh_from_db()
    assert watched.price_current != Decimal(old_price)
    expect(price).not_to_have_text(old_price, timeout=WAIT_MS)
    assert Decimal(price.inner_text()) == watched.price_current
    expect(page.locator("#equity-chart")).to_have_attribute("data-points",
                                                            re.compile(r"^([2-9]|\d\d+)$"))

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "mini_app.png"), full_page=True)

    # a liquidation countdown runs: a red banner with the time, counting down
    recheck_at = timezone.now() + timedelta(minutes=2)
    episode = LiquidationEpisode.objects.create(
        account=account, status=LiquidationEpisode.Status.WARNING, reason="max_drawdown",
        started_at=timezone.now(), recheck_at=recheck_at)
    banner = page.locator("#liquidation-banner")
    expect(banner).to_be_visible(timeout=WAIT_MS)
    expect(banner).to_contain_text(
        f"Positions will be closed at {recheck_at:%H:%M:%S} unless the account recovers")
    countdown = page.locator("#liquidation-countdown")
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first, timeout=3_000)
    page.screenshot(path=str(SCREENSHOTS / "mini_app_liquidation.png"), full_page=True)
    episode.status = LiquidationEpisode.Status.CANCELLED
    episode.save(update_fields=["status"])
    expect(banner).to_be_hidden(timeout=WAIT_MS)

    # an expired access token is refreshed once, without a new sign-in
    page.evaluate("sessionStorage.setItem('miniapp.access', 'not-a-token')")
    page.reload()
    expect(page.locator("#balance")).to_have_text("10,000.00 USD", timeout=WAIT_MS)
    expect(page.locator("#login-form")).to_be_hidden()
    assert any(status == 200 and url.endswith("/auth/token/refresh")
               for status, url in api_calls)

    # the switcher shows the other account
    switcher.select_option(str(other.pk))
    expect(page.locator("#balance")).to_have_text("5,000.00 EUR", timeout=WAIT_MS)
    expect(page.locator("#positions [data-ticket]")).to_have_count(0)
    expect(page.locator("#positions-empty")).to_be_visible()

    assert page_errors == []
    # the only refusals: the wrong password, and the bad access token before its refresh
    refused = [(s, u.removeprefix(live_server.url)) for s, u in api_calls if s >= 400]
    assert refused == [(401, "/api/v1/auth/token"), (401, "/api/v1/accounts")]
    assert all(not url.startswith(live_server.url) for url in blocked)
    context.close()


# Records, in the page, every moment the guard badge said "Guard OK" while the liquidation
# banner was up (checked on each change of either).
BADGE_WATCH = """() => {
  window.__okDuringEpisode = [];
  const badge = document.getElementById("guard-level");
  const banner = document.getElementById("liquidation-banner");
  const check = () => {
    if (!banner.hidden && !badge.hidden && /guard ok/i.test(badge.textContent)) {
      window.__okDuringEpisode.push(badge.textContent + " | " + banner.textContent);
    }
  };
  const options = {attributes: true, childList: true, characterData: true, subtree: true};
  new MutationObserver(check).observe(badge, options);
  new MutationObserver(check).observe(banner, options);
}"""


@pytest.mark.django_db(transaction=True)
def test_mini_app_badge_shows_a_running_liquidation(chromium, live_server, settings,
                                                    sim_bridge, linked_account):
    """The guard badge beside a liquidation banner says what the episode does: "closing in
    8 s" (counting down to the re-check) during the warning, "liquidating" while positions
    are closed; "Guard OK" only once the episode is over. The account's guard level stays
    "ok" throughout (no guard state row), as when a breach is caught between two checks."""
    from playwright.sync_api import expect

    settings.MINI_APP_POLL_SECONDS = 2
    account = linked_account(9611)
    sim_bridge.sim("sim_open", 9611, "EURUSD", "buy", "0.10", magic=1)
    sync(account)
    context = chromium.new_context(viewport={"width": 390, "height": 844},
                                   device_scale_factor=2, timezone_id="UTC", locale="en-GB")
    page = context.new_page()
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(live_server.url)
               else r.abort())
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.goto(f"{live_server.url}/app/")
    page.fill("#username", "member")
    page.fill("#password", "pw-member-1")
    page.click("#login-submit")
    badge = page.locator("#guard-level")
    banner = page.locator("#liquidation-banner")
    expect(page.locator("#balance")).to_have_text("10,000.00 USD", timeout=WAIT_MS)
    expect(badge).to_have_text("Guard OK")
    expect(banner).to_be_hidden()
    page.evaluate(BADGE_WATCH)

    # the warning: the page's clock is held 8 s before the re-check, then 7 s
    recheck_at = (timezone.now() + timedelta(minutes=2)).replace(microsecond=0)
    episode = LiquidationEpisode.objects.create(
        account=account, status=LiquidationEpisode.Status.WARNING, reason="max_drawdown",
        started_at=timezone.now(), recheck_at=recheck_at)
    page.clock.set_fixed_time(recheck_at - timedelta(seconds=8))
    expect(banner).to_be_visible(timeout=WAIT_MS)
    expect(badge).to_have_text("closing in 8 s", timeout=WAIT_MS)
    expect(badge).to_have_attribute("data-episode", "warning")
    expect(page.locator("#liquidation-countdown")).to_have_text("8 s left")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "mini_app_badge_closing.png"))
    page.clock.set_fixed_time(recheck_at - timedelta(seconds=7))
    expect(badge).to_have_text("closing in 7 s", timeout=3_000)
    expect(page.locator("#liquidation-countdown")).to_have_text("7 s left")
    # the re-check is due and running: no countdown, still no "Guard OK"
    page.clock.set_fixed_time(recheck_at)
    expect(badge).to_have_text("re-checking", timeout=3_000)

    # the closes: "liquidating"
    LiquidationEpisode.objects.filter(pk=episode.pk).update(
        status=LiquidationEpisode.Status.LIQUIDATING)
    expect(badge).to_have_text("liquidating", timeout=WAIT_MS)
    expect(badge).to_have_attribute("data-episode", "liquidating")
    expect(banner).to_contain_text("Positions are being closed now.")
    page.screenshot(path=str(SCREENSHOTS / "mini_app_badge_liquidating.png"))

    # over: the badge is the guard level again
    LiquidationEpisode.objects.filter(pk=episode.pk).update(
        status=LiquidationEpisode.Status.DONE, finished_at=timezone.now())
    expect(banner).to_be_hidden(timeout=WAIT_MS)
    expect(badge).to_have_text("Guard OK")
    expect(badge).not_to_have_attribute("data-episode", re.compile(".*"))

    assert page.evaluate("window.__okDuringEpisode") == []
    assert page_errors == []
    context.close()


# A local stand-in for telegram-web-app.js: what the page uses of Telegram.WebApp.
TELEGRAM_STUB = """
window.__tg = {ready: 0, expand: 0};
window.Telegram = {WebApp: {
  initData: INIT_DATA,
  colorScheme: "dark",
  themeParams: {bg_color: "#17212b", text_color: "#f5f5f5", hint_color: "#708499",
                button_color: "#5288c1", button_text_color: "#ffffff",
                secondary_bg_color: "#232e3c", "bad key": "red", link_color: "url(x)"},
  ready: function () { window.__tg.ready += 1; },
  expand: function () { window.__tg.expand += 1; },
  onEvent: function () {}
}};
"""


def telegram_stub(init_data: str) -> str:
    return TELEGRAM_STUB.replace("INIT_DATA", json.dumps(init_data))


def open_in_telegram(chromium, live_server, init_data: str):
    context = chromium.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(live_server.url)
               else r.abort())
    page.route("https://telegram.org/js/telegram-web-app.js", lambda r: r.fulfill(
        status=200, content_type="application/javascript", body=telegram_stub(init_data)))
    return context, page


@pytest.mark.django_db(transaction=True)
def test_mini_app_in_telegram_falls_back_and_retries(chromium, live_server, settings,
                                                     member):
    """Inside Telegram (a local stand-in for its script): ready() and expand() are called,
    the theme colours apply, and initData that the server refuses ends on the plain
    sign-in. Then a failing API shows the error state, and Retry recovers."""
    from playwright.sync_api import expect

    settings.TELEGRAM_BOT_TOKEN = "123456:test-bot-token"
    bad = "query_id=AAE&user=%7B%22id%22%3A42%7D&auth_date=1700000000&hash=00ff"
    context, page = open_in_telegram(chromium, live_server, bad)
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    telegram_posts: list[str] = []
    page.on("request", lambda r: r.url.endswith("/api/v1/auth/telegram")
            and telegram_posts.append(r.post_data or ""))

    page.goto(f"{live_server.url}/app/")
    expect(page.locator("#login-form")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#login-note")).to_contain_text("Telegram sign-in failed")
    assert len(telegram_posts) == 1
    assert json.loads(telegram_posts[0]) == {"init_data": bad}
    assert page.evaluate("window.__tg") == {"ready": 1, "expand": 1}
    root_style = page.evaluate("document.documentElement.getAttribute('style')")
    assert "--tg-theme-bg-color: #17212b" in root_style
    assert "url(" not in root_style and "bad" not in root_style
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(23, 33, 43)"
    assert page.evaluate("document.documentElement.dataset.scheme") == "dark"

    failing = {"on": True}

    def accounts(route) -> None:
        if failing["on"]:
            route.fulfill(status=503, content_type="application/json",
                          body='{"code": "unavailable", "message": "Down for a moment."}')
        else:
            route.continue_()

    page.route(f"{live_server.url}/api/v1/accounts", accounts)
    page.fill("#username", "member")
    page.fill("#password", "pw-member-1")
    page.click("#login-submit")
    expect(page.locator("#error-view")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#error-message")).to_contain_text("Down for a moment.")
    failing["on"] = False
    page.click("#retry")
    expect(page.locator("#empty-view")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#empty-view")).to_contain_text("No trading account is linked")
    assert page_errors == []
    context.close()


@pytest.mark.django_db(transaction=True)
def test_mini_app_signs_in_with_telegram(chromium, live_server, settings, member):
    """Valid initData signs the member in with no form; when both tokens are refused later,
    the page signs in through Telegram again instead of asking for a password."""
    from playwright.sync_api import expect

    from notifications.initdata import sign

    settings.TELEGRAM_BOT_TOKEN = "123456:test-bot-token"
    member.telegram_id = 4242
    member.save(update_fields=["telegram_id"])
    fields = {"query_id": "AAE", "auth_date": str(int(time.time())),
              "user": json.dumps({"id": 4242, "first_name": "Mem"})}
    init_data = urlencode({**fields, "hash": sign(fields, bot_token=settings.TELEGRAM_BOT_TOKEN)})
    context, page = open_in_telegram(chromium, live_server, init_data)
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    telegram_posts: list[int] = []
    page.on("response", lambda r: r.url.endswith("/api/v1/auth/telegram")
            and telegram_posts.append(r.status))

    page.goto(f"{live_server.url}/app/")
    expect(page.locator("#empty-view")).to_be_visible(timeout=WAIT_MS)  # no account linked
    expect(page.locator("#login-view")).to_be_hidden()
    assert telegram_posts == [200]
    assert page.evaluate("sessionStorage.getItem('miniapp.via')") == "telegram"

    page.evaluate("sessionStorage.setItem('miniapp.access', 'x');"
                  "sessionStorage.setItem('miniapp.refresh', 'y')")
    page.reload()
    expect(page.locator("#empty-view")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#login-view")).to_be_hidden()
    assert telegram_posts == [200, 200]
    assert page_errors == []
    context.close()
