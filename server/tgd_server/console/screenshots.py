"""`tgd-server screenshots --out docs/img`: the console's pictures in docs/operator.md.

A console of its own (scene.py: a throw-away database, two handsets' alarms sent as
handsets send them), photographed in Debian's Chromium on a control-room desktop
(1366×900) and on a phone (390×844): the live list as a new alarm comes in, and the
alarm's own page. Needs Chromium at /usr/bin/chromium and Playwright (dev extras).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

SHOTS = ("desktop-list.png", "desktop-alarm.png", "phone-list.png", "phone-alarm.png")


def take(out: Path) -> list[Path]:
    """Write the four screenshots into `out`; returns their paths."""
    from playwright.sync_api import expect, sync_playwright

    from .scene import DESKTOP, PHONE, ConsoleScene, launch_chromium, log_in

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="tgd-screenshots-") as folder:
        scene = ConsoleScene(Path(folder))
        try:
            fix = (-22.27210, 166.47020)
            scene.send("NC0043", "alarm", -22.15020, 166.47110, acc=35, call="alerting",
                       sms="sent")
            with sync_playwright() as p:
                browser = launch_chromium(p)
                try:
                    for screen, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                        page = browser.new_page(viewport=viewport, locale="fr-FR")
                        log_in(page, scene.url)
                        page.locator("#sound-toggle").click()  # as at the start of a shift
                        expect(page.locator("#live-status")).to_have_text("En direct",
                                                                          timeout=15_000)
                        if screen == "desktop":  # the new alarm arrives while she watches
                            fix_time = int(time.time()) - 3
                            scene.send("NC0042", "alarm", *fix, acc=12, call="alerting",
                                       sms="sent", fix_age_s=3)
                            scene.send_aml("NC0042", *fix, radius_m=12, fix_time=fix_time)
                        expect(page.locator("tr.alarm-row")).to_have_count(2, timeout=15_000)
                        page.wait_for_timeout(800)  # the overview map settles
                        written.append(_shot(page, out / f"{screen}-list.png"))
                        page.goto(f"{scene.url}/alarmes/{scene.alarm_id('NC0042')}")
                        expect(page.locator("#map path.tgd-fix-latest")).to_have_count(1)
                        page.wait_for_timeout(500)
                        written.append(_shot(page, out / f"{screen}-alarm.png"))
                        page.close()
                finally:
                    browser.close()
        finally:
            scene.close()
    return written


def _shot(page, path: Path) -> Path:
    page.screenshot(path=str(path), animations="disabled")
    return path
