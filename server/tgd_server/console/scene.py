"""A console with believable alarms, for screenshots and browser tests.

A real app (SQLite in a folder of its own) on a free port, served from a thread; the
alarms arrive as a handset sends them: HMAC-signed data messages over HTTP and AML
SMS through the SMS ingest. Chromium is Debian's (/usr/bin/chromium), driven by
Playwright; no browser is ever downloaded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery"
OPERATOR = "agent.dupont"


@dataclass
class Handset:
    device_id: str
    special_number: str
    key: str
    person: str
    address: str
    home: tuple[float, float] | None
    notes: str
    seq: int = 0
    aid: str = field(default_factory=lambda: secrets.token_hex(4))


HANDSETS = (
    Handset("NC0042", "+687751042", secrets.token_hex(32), "Marie Exemple",
            "12 rue de la Paix, Vallée des Colons, Nouméa", (-22.2795, 166.4615),
            "Démonstration : aucune personne réelle. Auteur connu, possiblement armé."),
    Handset("NC0043", "+687751043", secrets.token_hex(32), "Jeanne Essai",
            "Lotissement Les Cassis, Dumbéa", (-22.1580, 166.4560),
            "Démonstration : aucune personne réelle."),
)


class ConsoleScene:
    """The app, its data and its server; `url` is where the browser goes."""

    def __init__(self, folder: Path, config: dict | None = None) -> None:
        from werkzeug.serving import make_server

        from .. import auth, create_app, db
        from ..devices import assign_case, register_device

        self.handsets = {h.device_id: Handset(**{**h.__dict__, "key": secrets.token_hex(32),
                                                 "aid": secrets.token_hex(4), "seq": 0})
                         for h in HANDSETS}
        folder.mkdir(parents=True, exist_ok=True)
        self.app = create_app({
            "TGD_DATABASE_URL": f"sqlite:///{folder / 'tgd.sqlite3'}",
            "TGD_VAR_DIR": str(folder), "SECRET_KEY": secrets.token_hex(16),
            "TGD_SECURE_COOKIES": False, "SESSION_COOKIE_SECURE": False,
            "TGD_SSE_KEEPALIVE_S": 1.0, "TGD_TILE_URL": "", "TGD_EVENTS_PG": False,
            **(config or {}),
        })
        db.create_all(self.app.extensions["tgd_engine"])
        with self.app.app_context(), db.write_session() as session:
            auth.create_user(session, OPERATOR, "operator", PASSWORD, "Agent Dupont")
            for h in self.handsets.values():
                register_device(session, {"device_id": h.device_id,
                                          "special_number": h.special_number, "key": h.key,
                                          "fw_version": "1.0.0"})
                assign_case(session, h.device_id, f"TJ-NOU-2026-{h.device_id[-4:]}", h.person,
                            h.address, h.notes, address_position=h.home)
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self.app.extensions["tgd_engine"].dispose()

    # --- what a handset sends ------------------------------------------------------------

    def send(self, device_id: str, type_: str, lat: float, lon: float, *, acc: int = 15,
             method: str = "G", fix_age_s: int = 4, call: str = "dialing",
             sms: str = "pending", csq: int = 21) -> dict:
        """One HMAC-signed data message over HTTP (docs/protocol.md); the server's answer."""
        h = self.handsets[device_id]
        h.seq += 1
        now = int(time.time())
        message = {
            "v": 1, "dev": device_id, "seq": h.seq, "type": type_, "t": now, "aid": h.aid,
            "fix": {"m": method, "lat": lat, "lon": lon, "acc": acc, "t": now - fix_age_s},
            "cell": {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352, "ci": 20513, "sig": -95},
            "bat": 3987, "csq": csq, "fw": "1.0.0", "ch": {"call": call, "sms": sms},
        }
        if type_ == "alarm":
            message["at"] = now - 2
        body = json.dumps(message, separators=(",", ":")).encode()
        signature = hmac.new(bytes.fromhex(h.key), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            f"{self.url}/api/v1/device/messages", data=body, method="POST",
            headers={"Content-Type": "application/json", "X-TGD-Signature": signature})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def send_aml(self, device_id: str, lat: float, lon: float, *, radius_m: int = 15,
                 fix_time: float | None = None) -> dict:
        """The handset's AML SMS, as the SMS gateway hands it to the server."""
        from ..sms.aml import build_aml
        from ..sms.ingest_sms import ingest_aml_sms

        h = self.handsets[device_id]
        top = datetime.fromtimestamp(int(fix_time or time.time()), UTC)
        text = build_aml(lat=lat, lon=lon, radius_m=radius_m, time_of_positioning=top,
                         confidence_pct=68, method="G", imsi="546010000000042",
                         imei="861234567890123", mcc="546", mnc="01")
        with self.app.app_context():
            return ingest_aml_sms(h.special_number, text).answer

    def alarm_id(self, device_id: str) -> int:
        from sqlalchemy import select

        from .. import db
        from ..models import Alarm

        with self.app.app_context():
            return db.get_session().scalars(
                select(Alarm.id).where(Alarm.device_id == device_id)
                .order_by(Alarm.id.desc())).first()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def log_in(page, base_url: str) -> None:
    page.goto(f"{base_url}/connexion")
    page.fill("#username", OPERATOR)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/alarmes")
