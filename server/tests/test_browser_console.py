"""The police console in a real browser (Debian's Chromium driven by Playwright).

The real app runs on a free port in a thread; a handset-signed alarm is POSTed to
the ingest endpoint; the operator's open list shows it live, its page shows the
marker and the accuracy circle on the map, and acknowledging it changes its state.
Set TGD_BROWSER_SCREENSHOTS=DIR to keep the screenshots for review.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from tgd_server import auth, create_app, db
from tgd_server.devices import register_device
from tgd_server.models import Alarm, Case, Device

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]
PASSWORD = "correct horse battery"
WAIT_MS = 15_000  # generous: a loaded 2-core machine, not a speed requirement

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"Chromium not found at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture
def live_server(tmp_path):
    from werkzeug.serving import make_server

    app = create_app({
        "TGD_DATABASE_URL": f"sqlite:///{tmp_path / 'tgd.sqlite3'}",
        "TGD_VAR_DIR": str(tmp_path), "SECRET_KEY": secrets.token_hex(16),
        "TGD_SECURE_COOKIES": False, "SESSION_COOKIE_SECURE": False,
        "TGD_SSE_KEEPALIVE_S": 1.0, "TGD_TILE_URL": "",
    })
    db.create_all(app.extensions["tgd_engine"])
    key, other_key = secrets.token_hex(32), secrets.token_hex(32)
    with app.app_context(), db.write_session() as session:
        register_device(session, {"device_id": "NC0043", "special_number": "+687751043",
                                  "key": other_key, "fw_version": "1.0.0"})
        auth.create_user(session, "agent.dupont", "operator", PASSWORD, "Agent Dupont")
        device = register_device(session, {"device_id": "NC0042", "special_number": "+687751042",
                                           "key": key, "fw_version": "1.0.0"})
        case = Case(judicial_ref="TJ-NOU-2026-0042", name="Marie Exemple",
                    address="12 rue de la Paix, Vallée des Colons, Nouméa",
                    police_notes="Auteur connu, possiblement armé.")
        session.add(case)
        session.flush()
        device.case_id = case.id
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"app": app, "url": f"http://127.0.0.1:{server.server_port}", "key": key,
           "other_key": other_key}
    server.shutdown()
    app.extensions["tgd_engine"].dispose()


# Records (in the page) the wall-clock time the first alarm row appears.
WATCH_FOR_FIRST_ROW = """() => {
  window.tgdFirstRowAt = null;
  new MutationObserver(() => {
    if (window.tgdFirstRowAt === null && document.querySelector('tr.alarm-row')) {
      window.tgdFirstRowAt = performance.timeOrigin + performance.now();
    }
  }).observe(document.getElementById('alarm-list'), {childList: true, subtree: true});
}"""


def post_signed(base_url: str, key_hex: str, type_: str, seq: int, aid: str,
                fix_age_s: int = 4, device_id: str = "NC0042") -> dict:
    """What the handset does (docs/protocol.md): HMAC-SHA256 over the exact body."""
    now = int(time.time())
    message = {
        "v": 1, "dev": device_id, "seq": seq, "type": type_, "t": now, "aid": aid,
        "fix": {"m": "G", "lat": -22.27631, "lon": 166.45772 + seq * 0.001, "acc": 15,
                "t": now - fix_age_s},
        "cell": {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 20513, "sig": -95},
        "bat": 3987, "csq": 21, "fw": "1.0.0", "ch": {"call": "alerting", "sms": "sent"},
    }
    if type_ == "alarm":
        message["at"] = now - 2
    body = json.dumps(message, separators=(",", ":")).encode()
    signature = hmac.new(bytes.fromhex(key_hex), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"{base_url}/api/v1/device/messages", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-TGD-Signature": signature})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_operator_sees_a_new_alarm_live_on_the_map_and_acknowledges_it(live_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("TGD_BROWSER_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    base = live_server["url"]
    csp_violations: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="fr-FR")
            page.on("console", lambda m: csp_violations.append(m.text)
                    if "Content Security Policy" in m.text else None)

            page.goto(f"{base}/connexion")
            page.fill("#username", "agent.dupont")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("Alarmes en cours")
            expect(page.locator("#live-status")).to_have_text("En direct", timeout=WAIT_MS)
            page.click("#sound-toggle")
            expect(page.locator("#sound-toggle")).to_have_text("Son activé")
            assert page.locator("tr.alarm-row").count() == 0

            page.evaluate(WATCH_FOR_FIRST_ROW)
            aid = secrets.token_hex(4)
            posted_at = time.time()
            answer = post_signed(base, live_server["key"], "alarm", 1, aid)
            assert answer["ok"] and answer["alarm"]["state"] == "received"

            row = page.locator("tr.alarm-row")
            expect(row).to_have_count(1, timeout=WAIT_MS)  # no reload: the SSE feed brought it
            shown_at = page.evaluate("window.tgdFirstRowAt") / 1000
            print(f"\nconsole figure: signed alarm POSTed -> row on the operator's screen "
                  f"{(shown_at - posted_at) * 1000:.0f} ms (ingest, SSE, fragment fetch, render)")
            expect(row).to_have_class(lambda_has("new-alarm"))
            expect(row).to_contain_text("+687751042")
            expect(row).to_contain_text("Marie Exemple")
            expect(row).to_contain_text("GNSS")
            banner = page.locator("#new-alarm-banner")
            expect(banner).to_be_visible()
            expect(banner).to_contain_text("NOUVELLE ALARME")
            expect(page.locator("#overview-map path.tgd-fix-latest")).to_have_count(1)
            page.screenshot(path=str(shots / "console-list.png"))

            row.locator("td.number a").click()
            expect(page.locator(".who-number")).to_have_text("+687751042")
            marker = page.locator("#map path.tgd-fix-latest")
            expect(marker).to_have_count(1, timeout=WAIT_MS)
            expect(page.locator("#map path.tgd-accuracy")).to_have_count(1)
            expect(page.locator(".leaflet-control-scale")).to_be_visible()
            expect(page.locator(".tgd-fix-label")).to_contain_text("GNSS")
            expect(page.locator(".latest-fix .age")).to_contain_text("il y a")
            page.screenshot(path=str(shots / "console-alarm.png"))

            page.click("#ack-button")
            expect(page.locator(".alarm-state .state")).to_have_text("Prise en charge")
            expect(page.locator(".flash-ok")).to_contain_text("Alarme prise en charge")
            page.screenshot(path=str(shots / "console-acknowledged.png"))

            # The handset repeats a ten-minute-old GNSS fix: the page updates live
            # (no reload), draws the track and marks the fix as old.
            answer = post_signed(base, live_server["key"], "position", 2, aid, fix_age_s=600)
            assert answer["alarm"]["state"] == "acknowledged"  # the handset learns it here
            expect(page.locator(".latest-fix .age")).to_contain_text("ANCIENNE", timeout=WAIT_MS)
            expect(page.locator("#map path.tgd-fix-latest.stale")).to_have_count(1)
            expect(page.locator("#map path.tgd-track")).to_have_count(1)
            expect(page.locator("tr.position-row")).to_have_count(2)
            page.screenshot(path=str(shots / "console-stale.png"))

            # While she handles this alarm, another handset alarms: she is told at once.
            post_signed(base, live_server["other_key"], "alarm", 1, secrets.token_hex(4),
                        device_id="NC0043")
            banner = page.locator("#new-alarm-banner")
            expect(banner).to_be_visible(timeout=WAIT_MS)
            expect(banner).to_contain_text("NOUVELLE ALARME")
            banner.click()
            expect(page.locator(".who-number")).to_have_text("+687751043")
            page.wait_for_load_state("load")  # the page's scripts listen for "/" from here

            # The caller-number search from the keyboard lands on the first alarm.
            page.keyboard.press("/")
            expect(page.locator("#search-number")).to_be_focused()
            page.keyboard.type("75 10 42")
            page.keyboard.press("Enter")
            expect(page.locator(".who-number")).to_have_text("+687751042")
        finally:
            browser.close()

    with live_server["app"].app_context():
        session = db.get_session()
        alarm = session.scalars(select(Alarm).where(Alarm.aid == aid)).one()
        assert alarm.state == "acknowledged"
        assert session.get(Device, "NC0042").id == alarm.device_id
    assert csp_violations == []


def lambda_has(css_class: str):
    import re

    return re.compile(rf"(^|\s){re.escape(css_class)}(\s|$)")
