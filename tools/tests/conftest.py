"""Fixtures: the real server on a temp SQLite, the SIM7600 emulator, a virtual board."""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from flash_testkit import make_modem, start_board

from tgd_flash.serverapi import ServerTarget


@dataclass
class RunningServer:
    app: object
    base_url: str
    tech_token: str
    operator_token: str

    @property
    def tech(self) -> ServerTarget:
        return ServerTarget(self.base_url, self.tech_token)


@pytest.fixture
def server(tmp_path):
    from werkzeug.serving import make_server

    from tgd_server import auth, create_app, db

    var = tmp_path / "var"
    var.mkdir()
    app = create_app(
        {
            "TESTING": True,
            "TGD_DATABASE_URL": f"sqlite:///{var / 'tgd.sqlite3'}",
            "TGD_VAR_DIR": str(var),
            "SECRET_KEY": secrets.token_hex(16),
            "TGD_SECURE_COOKIES": False,
        }
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with app.app_context():
        db.create_all(db.engine())
        with db.write_session() as session:
            tech = auth.create_user(session, "bench-tech", "technician", secrets.token_hex(16))
            oper = auth.create_user(session, "bench-oper", "operator", secrets.token_hex(16))
            tech_token = auth.create_token(session, tech, "bench")
            oper_token = auth.create_token(session, oper, "bench")
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield RunningServer(app, f"http://127.0.0.1:{httpd.server_port}", tech_token, oper_token)
    httpd.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def network():
    from tgd_rig.emulator import Network, Timing

    net = Network(timing=Timing.fast(0.02))
    net.start()
    yield net
    net.stop()


@pytest.fixture
def modem(network):
    modem = make_modem(network)
    modem.power_on()
    yield modem
    modem.close()


@pytest.fixture
def flash_dir(tmp_path) -> Path:
    path = tmp_path / "flash"
    path.mkdir()
    return path


@pytest.fixture
def board(flash_dir, modem):
    vb = start_board(flash_dir, modem)
    yield vb
    vb.stop()
