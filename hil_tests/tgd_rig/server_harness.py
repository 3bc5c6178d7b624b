"""A real TGD server for the emulated rig: the Flask app on 127.0.0.1, port chosen by the OS.

`create_app` with a SQLite file in the rig's work directory, served by werkzeug's
`make_server` in a thread. The harness creates a technician (registers devices) and
an operator (reads alarms) with API tokens, imports the New Caledonia cells, and
forwards the server's live events (`tgd_server.events`) to the rig's event bus.

Everything the rig asks of the server goes through its HTTP REST API with those
tokens, as a technician's tool or the console would.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from .errors import RigError
from .rig import EventBus

INGEST_PATH = "/api/v1/device/messages"


class ServerError(RigError):
    """The server refused a rig request or could not be started."""


class ServerHarness:
    def __init__(self, workdir: Path, bus: EventBus | None = None, database_url: str | None = None,
                 cells_csv: Path | None = None, port: int = 0):
        self.workdir = Path(workdir)
        self.port = port                  # 0: the OS chooses (tests); the demo asks for 8080
        self.database_url = database_url or f"sqlite:///{self.workdir / 'tgd.sqlite3'}"
        self.bus = bus                    # the rig's event bus: server_alarm, server_position...
        self.cells_csv = cells_csv        # None: the server's own New Caledonia data set
        self._alarm_aids: dict[int, str] = {}
        self.app = None
        self.wsgi_app = None               # a middleware around the app (the campaign's faults)
        self.base_url = ""
        self.tech_token = ""
        self.operator_token = ""
        self._server = None
        self._threads: list[threading.Thread] = []
        self._subscription = None
        self._stopping = threading.Event()
        self._api_lock = threading.Lock()
        self.server_errors: list[str] = []

    @property
    def ingest_url(self) -> str:
        return self.base_url + INGEST_PATH

    def start(self) -> None:
        from tgd_server import create_app

        for noisy in ("werkzeug", "alembic"):   # no line per request or per migration step
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # owner-only, as the server asks of a folder holding device keys and cases
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        var_dir = self.workdir / "var"
        var_dir.mkdir(mode=0o700, exist_ok=True)
        self.app = create_app({
            "TESTING": True,
            "TGD_DATABASE_URL": self.database_url,
            "TGD_VAR_DIR": str(var_dir),
            "SECRET_KEY": secrets.token_hex(32),
            "TGD_SECURE_COOKIES": False,
            "SESSION_COOKIE_SECURE": False,
        })
        self._prepare_database()
        if self.bus is not None:
            self._follow_events()
        self._listen()

    def _listen(self) -> None:
        self._server = make_server("127.0.0.1", self.port, self.wsgi_app or self.app, threaded=True)
        self.port = self._server.server_port     # a restart keeps the same port
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        thread = threading.Thread(target=self._server.serve_forever, name="tgd-server", daemon=True)
        thread.start()
        self._threads.append(thread)

    def wrap(self, middleware) -> None:
        """Serve `middleware(app)` from now on (and after a restart)."""
        self.wsgi_app = middleware(self.app)
        if self._server is not None:
            self._server.app = self.wsgi_app

    def go_down(self) -> None:
        """The server stops listening (connections refused) until come_back()."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def come_back(self) -> None:
        if self._server is None and self.app is not None:
            self._listen()

    def _prepare_database(self) -> None:
        from tgd_server import auth, cells, db

        with self.app.app_context():
            db.create_all(db.engine())
            with db.write_session() as session:
                cells.import_csv(session, self.cells_csv or cells_csv_path())
                tech = auth.create_user(session, "rig-technician", "technician", secrets.token_hex(16))
                oper = auth.create_user(session, "rig-operator", "operator", secrets.token_hex(16))
                self.tech_token = auth.create_token(session, tech, "hil rig")
                self.operator_token = auth.create_token(session, oper, "hil rig")

    def _follow_events(self) -> None:
        from tgd_server import events

        self._subscription = events.subscribe()

        def pump() -> None:
            while not self._stopping.is_set():
                event = self._subscription.get(timeout=0.2)
                if event is None:
                    continue
                # Stamped on arrival: in-process the queue hop is microseconds, and it is
                # the moment the console could show it.
                received = time.monotonic()
                for kind, device, data in self.translate(event):
                    self.bus.emit("server", kind, device, t=received, **data)

        thread = threading.Thread(target=pump, name="tgd-server-events", daemon=True)
        thread.start()
        self._threads.append(thread)

    def translate(self, event: dict) -> list[tuple[str, str | None, dict[str, Any]]]:
        """A server event as rig events: server_alarm, alarm_updated, server_position."""
        kind = event.get("type")
        device = event.get("device_id")
        out: list[tuple[str, str | None, dict[str, Any]]] = []
        if kind in ("alarm.created", "alarm.updated"):
            if event.get("aid") and event.get("alarm_id") is not None:
                self._alarm_aids[event["alarm_id"]] = event["aid"]
            data = {"aid": event.get("aid"), "alarm_id": event.get("alarm_id"),
                    "state": event.get("state"), "channel": event.get("channel")}
            out.append(("server_alarm" if kind == "alarm.created" else "alarm_updated", device, data))
        elif kind == "position.added":
            fix = {"method": event.get("method"), "lat": event.get("lat"), "lon": event.get("lon"),
                   "acc": event.get("acc_m")}
            out.append(("server_position", device, {
                "aid": self._alarm_aids.get(event.get("alarm_id")), "alarm_id": event.get("alarm_id"),
                "fix": fix, "channel": event.get("channel")}))
        elif kind == "device.updated":
            out.append(("server_message", device, {"type": event.get("message_type"),
                                                   "channel": event.get("channel")}))
        return out

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self.app is not None:
            engine = self.app.extensions.get("tgd_engine")
            if engine is not None:
                engine.dispose()

    # -- REST API --------------------------------------------------------------------------

    def request(self, method: str, path: str, token: str, body: dict | None = None,
                expect: tuple[int, ...] = (200,)) -> Any:
        """One REST call. The rig is one client: its calls go one at a time. A GET that
        meets a 5xx is tried twice more (the rig's reads are instruments, not the path
        under test); the first 5xx is kept in `self.server_errors` for the report."""
        attempts = 3 if method == "GET" else 1
        with self._api_lock:
            for attempt in range(1, attempts + 1):
                status, payload = self._request_once(method, path, token, body)
                if status < 500 or attempt == attempts:
                    break
                self.server_errors.append(f"{method} {path}: HTTP {status}")
                time.sleep(0.1 * attempt)
        if status not in expect:
            raise ServerError(f"{method} {path}: HTTP {status}: {payload[:300]!r}")
        return json.loads(payload) if payload else None

    def _request_once(self, method: str, path: str, token: str, body: dict | None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        return status, payload

    def register_device(self, identity, fw_version: str = "1.0.0") -> None:
        self.request("POST", "/api/v1/devices", self.tech_token, {
            "device_id": identity.device_id, "special_number": identity.special_number,
            "imei": identity.imei, "iccid": identity.iccid, "key": identity.key,
            "fw_version": fw_version}, expect=(200, 201))

    def alarms(self, device_id: str | None = None, state: str = "all") -> list[dict[str, Any]]:
        path = f"/api/v1/alarms?state={state}"
        if device_id:
            path += f"&device={device_id}"
        answer = self.request("GET", path, self.operator_token)
        return answer["alarms"] if isinstance(answer, dict) else answer

    def alarm(self, alarm_id) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/alarms/{alarm_id}", self.operator_token)

    def ack_alarm(self, alarm_id) -> None:
        self.request("POST", f"/api/v1/alarms/{alarm_id}/ack", self.operator_token)

    def close_alarm(self, alarm_id, note: str = "closed by the HIL rig") -> None:
        self.request("POST", f"/api/v1/alarms/{alarm_id}/close", self.operator_token, {"note": note})


def cells_csv_path() -> Path:
    import tgd_server

    return Path(tgd_server.__file__).resolve().parent / "data" / "cells_nc.csv"
