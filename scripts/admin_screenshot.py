"""Screenshot the admin index (the owner's risk dashboard) of a running demo with headless
Chromium (Debian's /usr/bin/chromium, driven by Playwright).

    .venv/bin/python scripts/admin_screenshot.py [--url http://127.0.0.1:8000]
        [--password <owner's; default: DEMO_OWNER_PASSWORD from .env>]
        [--out var/screenshots/admin_index.png]

Logs in as ``owner`` through the admin's login form and saves a full-page PNG, and the
dashboard alone beside it (``…_dashboard.png``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def owner_password() -> str:
    for line in (ROOT / ".env").read_text().splitlines():
        if line.startswith("DEMO_OWNER_PASSWORD="):
            return line.split("=", 1)[1]
    raise SystemExit("no DEMO_OWNER_PASSWORD in .env: pass --password")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--password", default=None)
    parser.add_argument("--out", default=str(ROOT / "var" / "screenshots" / "admin_index.png"))
    parser.add_argument("--width", type=int, default=1400)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        page.goto(f"{args.url}/admin/login/?next=/admin/")
        page.fill("#id_username", "owner")
        page.fill("#id_password", args.password or owner_password())
        page.click("input[type=submit]")
        page.wait_for_selector("#risk-dashboard", timeout=15_000)
        page.screenshot(path=str(out), full_page=True)
        # the dashboard alone, at full resolution, beside it
        page.locator("#risk-dashboard").screenshot(
            path=str(out.with_name(out.stem + "_dashboard.png")))
        browser.close()
    print(f"admin index screenshot: {out}")


if __name__ == "__main__":
    main()
