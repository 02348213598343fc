"""The Telegram mini app in a real headless Chromium against the live server: the plain
sign-in, the figures and positions of a simulated account, a price moving on the next poll,
the liquidation countdown, a token refresh and the account switcher. Nothing leaves the
machine: every request to another origin (telegram.org's script) is aborted."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from guards.models import LiquidationEpisode
from positions import services
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
    expect(page.locator("#equity-chart")).to_have_attribute("data-points", re.compile("[2-9]"))

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
    unexpected = [(s, u) for s, u in api_calls if s >= 400 and not (
        s == 401 and "/auth/token" in u and not u.endswith("/refresh"))
        and not (s == 401 and "/accounts" in u)]
    assert unexpected == []
    assert all(not url.startswith(live_server.url) for url in blocked)
    context.close()
