"""The police console as operators meet it, in Debian's Chromium (Playwright): a desktop
(1366×900) and a phone in a patrol car (390×844), alarms sent as a handset sends them
(signed HTTP messages, AML SMS). Set TGD_BROWSER_SCREENSHOTS=DIR to keep screenshots.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from basemap_sample import write_archive

from tgd_server.console.scene import (
    CHROMIUM,
    DESKTOP,
    PHONE,
    ConsoleScene,
    launch_chromium,
    log_in,
)

WAIT_MS = 15_000  # generous: a loaded 2-core machine, not a speed requirement
FIX = (-22.27210, 166.47020)  # 2,2 km east of Nouméa's centre
OTHER_FIX = (-22.15020, 166.47110)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"Chromium not found at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()


@pytest.fixture
def make_scene(tmp_path):
    scenes = []

    def make(**config) -> ConsoleScene:
        scene = ConsoleScene(tmp_path / f"scene{len(scenes)}", config)
        scenes.append(scene)
        return scene

    yield make
    for scene in scenes:
        scene.close()


def shot(page, name: str) -> None:
    folder = os.environ.get("TGD_BROWSER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def two_alarms(scene: ConsoleScene) -> None:
    """Marie's handset: the same GNSS fix by data and by AML SMS; Jeanne's: data only."""
    fix_time = int(time.time()) - 4
    scene.send("NC0042", "alarm", *FIX, acc=12, call="alerting", sms="sent",
               fix_age_s=int(time.time()) - fix_time)
    scene.send_aml("NC0042", *FIX, radius_m=12, fix_time=fix_time)
    scene.send("NC0043", "alarm", *OTHER_FIX, acc=35, call="dialing", sms="pending")


def wait_true(page, expression: str, timeout_ms: int = WAIT_MS) -> None:
    """Poll a page expression (wait_for_function evaluates strings, which the CSP forbids)."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout_ms} ms: {expression}"
        page.wait_for_timeout(100)


def watch_csp(page) -> list[str]:
    """Content-Security-Policy refusals the page reports (none expected: no inline script)."""
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text else None)
    return refused


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def inside(inner: dict, outer: dict) -> bool:
    return (inner["x"] >= outer["x"] - 1 and inner["y"] >= outer["y"] - 1
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 1
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 1)


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_who_where_and_the_action_fit_the_first_screen(browser, make_scene, screen):
    from playwright.sync_api import expect

    viewport = {"desktop": DESKTOP, "phone": PHONE}[screen]
    scene = make_scene()
    two_alarms(scene)
    context = browser.new_context(viewport=viewport, locale="fr-FR")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=scene.url)
    page = context.new_page()
    csp_refusals = watch_csp(page)
    log_in(page, scene.url)
    rows = page.locator("tr.alarm-row")
    expect(rows).to_have_count(2)
    assert no_sideways_scroll(page), "the alarm list scrolls sideways"
    header = page.locator("header.topbar").bounding_box()
    if screen == "phone":
        assert rows.first.evaluate("r => getComputedStyle(r).display") == "grid"  # a card
        assert header["height"] <= 130, f"header {header['height']} px high"
        # Each card shows where she is without scrolling sideways.
        expect(rows.first).to_contain_text("km au nord-est de Dumbéa")
    shot(page, f"{screen}-list")

    page.goto(f"{scene.url}/alarmes/{scene.alarm_id('NC0042')}")
    ack = page.locator("#ack-button")
    expect(ack).to_be_visible()
    box = ack.bounding_box()
    assert box["y"] + box["height"] <= viewport["height"], (
        f"'Prendre en charge' at {box['y']:.0f} px: not in the first {viewport['height']} px")
    assert no_sideways_scroll(page), "the alarm page scrolls sideways"
    label = page.locator(".tgd-fix-label")
    expect(label).to_contain_text("GNSS")
    assert inside(label.bounding_box(), page.locator("#map").bounding_box()), "map label clipped"
    # No basemap installed: where she is, in words, and the coordinates to read out.
    expect(page.locator(".latest-place")).to_have_text("2,2 km à l'est de Nouméa")
    expect(page.locator(".latest-coords")).to_contain_text("S 22° 16,326′ E 166° 28,212′")
    assert page.locator("img.leaflet-tile").count() == 0
    # One fix, two channels: one row that says both.
    row = page.locator("tr.position-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("reçue par Données + SMS")
    expect(page.locator("#map .tgd-address-marker")).to_have_count(1)
    shot(page, f"{screen}-alarm")
    copy = page.locator(".latest-coords button.copy").last
    copy.click()
    expect(copy).to_have_text("Copié")
    assert page.evaluate("navigator.clipboard.readText()") == "S 22° 16,326′ E 166° 28,212′"
    context.close()
    assert csp_refusals == []


PLAY_COUNTER = """
window.tgdAlertPlays = 0;
const play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () {
  if ((this.src || '').includes('alerte.wav')) window.tgdAlertPlays += 1;
  return play.call(this);
};
"""


def test_the_alert_repeats_until_the_alarm_is_taken(browser, make_scene):
    from playwright.sync_api import expect

    scene = make_scene(TGD_ALERT_REPEAT_S=0.5)
    context = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    context.add_init_script(PLAY_COUNTER)
    page = context.new_page()
    log_in(page, scene.url)
    toggle = page.locator("#sound-toggle")
    expect(toggle).to_have_text("Son coupé — activer")  # plainly off until she turns it on
    toggle.click()
    expect(toggle).to_have_text("Son activé")
    expect(page.locator("#live-status")).to_have_text("En direct", timeout=WAIT_MS)
    start = page.evaluate("window.tgdAlertPlays")

    scene.send("NC0042", "alarm", *FIX)
    expect(page.locator("tr.alarm-row")).to_have_count(1, timeout=WAIT_MS)
    wait_true(page, f"window.tgdAlertPlays >= {start + 4}")

    # The choice is the operator's, not the tab's: a new tab rings too.
    other = context.new_page()
    other.goto(f"{scene.url}/alarmes")
    expect(other.locator("#sound-toggle")).to_have_text("Son activé")
    wait_true(other, "window.tgdAlertPlays >= 2")
    # Turned off in one tab: off in both, and the button calls for attention.
    other.locator("#sound-toggle").click()
    expect(other.locator("#sound-toggle")).to_have_class(re.compile(r"\battention\b"))
    expect(toggle).to_have_text("Son coupé — activer")
    silent_from = page.evaluate("window.tgdAlertPlays")
    page.wait_for_timeout(1500)
    assert page.evaluate("window.tgdAlertPlays") == silent_from
    other.locator("#sound-toggle").click()
    other.close()
    wait_true(page, f"window.tgdAlertPlays >= {silent_from + 2}")

    page.locator("tr.alarm-row td.number a").click()
    page.locator("#ack-button").click()
    expect(page.locator(".alarm-state .state")).to_have_text("Prise en charge")
    page.wait_for_timeout(600)  # an answer already on its way
    after_ack = page.evaluate("window.tgdAlertPlays")
    page.wait_for_timeout(2000)
    assert page.evaluate("window.tgdAlertPlays") == after_ack, "still ringing after the ack"
    expect(page.locator("#sound-toggle")).not_to_have_class(re.compile(r"\battention\b"))
    context.close()


def test_channel_badges_follow_the_live_state(browser, make_scene):
    from playwright.sync_api import expect

    scene = make_scene()
    scene.send("NC0042", "alarm", *FIX, call="dialing", sms="pending")
    page = browser.new_page(viewport=DESKTOP, locale="fr-FR")
    log_in(page, scene.url)
    expect(page.locator("#live-status")).to_have_text("En direct", timeout=WAIT_MS)
    page.goto(f"{scene.url}/alarmes/{scene.alarm_id('NC0042')}")
    call = page.locator(".status .ch-call")
    expect(call).to_contain_text("Appel : numérotation, signalé il y a")
    expect(page.locator("#live-status")).to_have_text("En direct", timeout=WAIT_MS)
    scene.send("NC0042", "position", *FIX, call="alerting", sms="delivered")
    expect(call).to_contain_text("Appel : sonnerie", timeout=WAIT_MS)  # no reload
    expect(page.locator(".status .ch-sms")).to_have_text("SMS : remis")
    expect(page.locator("#alarm-live .ch-call.on")).to_have_count(1)
    page.close()


ENGLISH = re.compile(
    r"\b(the|and|with|without|from|found|not|no|handset|reported|battery|switching|kept|"
    r"review|registered|unknown|error|request|position received|signal)\b|\b[a-z]{2,}=\S",
    re.IGNORECASE)


def english_on(page) -> list[str]:
    text = page.evaluate("document.title + '\\n' + document.body.innerText")
    return sorted({m.group(0) for m in ENGLISH.finditer(text)} - {"Signal"})


def test_the_operator_pages_speak_french(browser, make_scene):
    from playwright.sync_api import expect

    scene = make_scene()
    two_alarms(scene)
    scene.send_aml("NC0043", *OTHER_FIX, radius_m=35)
    scene.send("NC0043", "last_gasp", *OTHER_FIX)
    page = browser.new_page(viewport=DESKTOP, locale="fr-FR")
    page.goto(f"{scene.url}/login")  # what people type first: the French login page
    expect(page).to_have_url(re.compile(r"/connexion$"))
    assert english_on(page) == []
    page.goto(f"{scene.url}/nimporte-quoi")
    expect(page.locator("h1")).to_have_text("Introuvable")
    assert english_on(page) == []
    log_in(page, scene.url)
    first = scene.alarm_id("NC0042")
    page.goto(f"{scene.url}/alarmes/{first}")
    page.locator("#ack-button").click()
    page.fill("#close-note", "Équipage sur place, personne en sécurité.")
    page.locator(".close-button").click()
    expect(page.locator(".alarm-state .state")).to_have_text("Clôturée")
    pages = ["/alarmes", f"/alarmes/{first}", f"/alarmes/{scene.alarm_id('NC0043')}",
             "/appareils/NC0042", "/alarmes/999999"]
    for path in pages:
        page.goto(f"{scene.url}{path}")
        page.wait_for_timeout(300)  # ages and labels drawn by the scripts
        assert english_on(page) == [], f"English on {path}"
    page.goto(f"{scene.url}/alarmes/{scene.alarm_id('NC0043')}")
    expect(page.locator(".device-mini .signal")).to_have_text("21/31 (−71 dBm, excellent)")
    expect(page.locator(".timeline")).to_contain_text("point de")
    expect(page.locator(".timeline")).to_contain_text("l'appareil s'éteint")
    expect(page.locator(".case .police-notes")).to_contain_text("Démonstration : aucune")
    page.goto(f"{scene.url}/alarmes")
    closed = page.locator("table.alarm-table.closed th")
    expect(closed).to_have_text(["État", "N° spécial", "Personne protégée", "Déclenchée",
                                 "Clôturée"])
    page.close()


@pytest.mark.parametrize("kind", ["raster", "vector"])
def test_the_map_draws_tiles_from_a_pmtiles_archive(browser, make_scene, tmp_path, kind):
    from playwright.sync_api import expect

    archive = tmp_path / f"nc-{kind}.pmtiles"
    write_archive(archive, kind)
    scene = make_scene(TGD_BASEMAP=str(archive))
    scene.send("NC0042", "alarm", *FIX, acc=12)
    page = browser.new_page(viewport=DESKTOP, locale="fr-FR")
    csp_refusals = watch_csp(page)
    answers: list[tuple[str, int]] = []
    page.on("response", lambda r: answers.append((r.url, r.status))
            if "/carte/tuiles/" in r.url else None)
    log_in(page, scene.url)
    page.goto(f"{scene.url}/alarmes/{scene.alarm_id('NC0042')}")
    if kind == "raster":
        tiles = page.locator("#map img.leaflet-tile-loaded")
        expect(tiles.first).to_be_visible(timeout=WAIT_MS)
        assert re.search(r"/carte/tuiles/\d+/\d+/\d+\.png$", tiles.first.get_attribute("src"))
        assert tiles.first.evaluate("img => img.naturalWidth") == 256
    else:
        expect(page.locator("#map canvas").first).to_be_visible(timeout=WAIT_MS)
    page.wait_for_timeout(500)
    served = [status for url, status in answers if url.endswith(".png" if kind == "raster"
                                                                  else ".mvt")]
    assert served and 200 in served
    assert page.locator(".map-note").count() == 0  # no "basemap not installed" note
    shot(page, f"basemap-{kind}")
    page.close()
    assert csp_refusals == []
