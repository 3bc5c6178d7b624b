"""Fixtures for the server tests: `app`, `client`, users/tokens, devices and signed messages.

Every database test runs on SQLite and on PostgreSQL (`backend` parameter). The
PostgreSQL run uses its own schema in TGD_TEST_PG_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), dropped afterwards, and is
skipped with a clear message when the server is unreachable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field

import pytest
from server_testkit import PASSWORD
from server_testkit import csrf_token as _csrf_token
from sqlalchemy import create_engine, text

from tgd_server import auth, create_app, db
from tgd_server.devices import register_device

PG_URL = os.environ.get("TGD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_reachable: bool | None = None


def pg_reachable() -> bool:
    global _pg_reachable
    if _pg_reachable is None:
        try:
            engine = create_engine(db.normalise_url(PG_URL), connect_args={"connect_timeout": 3})
            with engine.connect() as connection:
                connection.execute(text("select 1"))
            engine.dispose()
            _pg_reachable = True
        except Exception:  # any failure to connect means: skip the PostgreSQL runs
            _pg_reachable = False
    return _pg_reachable


@pytest.fixture
def pg_schema_url():
    """A database URL whose search_path is a fresh schema, dropped at the end."""
    if not pg_reachable():
        pytest.skip(f"PostgreSQL unreachable at {PG_URL} (set TGD_TEST_PG_URL)")
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(db.normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.connect() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request) -> str:
    return request.param


@pytest.fixture
def database_url(backend, tmp_path, request) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'tgd.sqlite3'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def app(database_url, tmp_path):
    app = create_app({
        "TESTING": True,
        "TGD_DATABASE_URL": database_url,
        "TGD_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "test-secret",
        "TGD_SECURE_COOKIES": False,
        "SESSION_COOKIE_SECURE": False,
    })
    db.create_all(app.extensions["tgd_engine"])
    yield app
    app.extensions["tgd_engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()




@pytest.fixture
def make_user(app):
    """make_user(role, username=None) -> User, with password PASSWORD."""
    def make(role: str, username: str | None = None):
        with app.app_context(), db.write_session() as session:
            return auth.create_user(session, username or f"{role}-{secrets.token_hex(3)}", role,
                                    PASSWORD)
    return make


@pytest.fixture
def api_headers(app, make_user):
    """api_headers(role) -> {"Authorization": "Bearer ..."} for a new user of that role."""
    def make(role: str) -> dict:
        user = make_user(role)
        with app.app_context(), db.write_session() as session:
            token = auth.create_token(session, session.merge(user), "test")
        return {"Authorization": f"Bearer {token}"}
    return make


@pytest.fixture
def login(client, make_user):
    """login(role) -> User: a console session for a new user of that role."""
    def do_login(role: str):
        user = make_user(role)
        response = client.get("/connexion")
        token = _csrf_token(response.get_data(as_text=True))
        client.post("/connexion", data={"username": user.username, "password": PASSWORD,
                                        "csrf_token": token})
        return user
    return do_login




@dataclass
class Handset:
    """A registered device that signs its messages like the firmware does."""

    device_id: str
    key_hex: str
    special_number: str
    seq: int = 0
    aid: str = field(default_factory=lambda: secrets.token_hex(4))

    def message(self, type_: str = "heartbeat", **overrides) -> dict:
        self.seq += 1
        now = int(time.time())
        body = {"v": 1, "dev": self.device_id, "seq": self.seq, "type": type_, "t": now,
                "fix": {"m": "N"}, "cell": {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 4352,
                                            "ci": 20481, "sig": -95},
                "bat": 3987, "csq": 21, "fw": "1.0.0"}
        if type_ in ("alarm", "position"):
            body["aid"] = self.aid
            body["ch"] = {"call": "dialing", "sms": "pending"}
        if type_ == "alarm":
            body["at"] = now - 1
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not _DROP}

    def sign(self, body: bytes) -> str:
        return hmac.new(bytes.fromhex(self.key_hex), body, hashlib.sha256).hexdigest()

    def encode(self, message: dict) -> bytes:
        return json.dumps(message, separators=(",", ":")).encode()

    def post(self, client, message: dict | bytes, signature: str | None = "auto",
             content_type: str = "application/json"):
        body = message if isinstance(message, bytes) else self.encode(message)
        headers = {}
        if signature == "auto":
            signature = self.sign(body)
        if signature is not None:
            headers["X-TGD-Signature"] = signature
        return client.post("/api/v1/device/messages", data=body, headers=headers,
                           content_type=content_type)


_DROP = object()  # Handset.message(key=DROP) leaves the key out


@pytest.fixture
def DROP():
    return _DROP


@pytest.fixture
def make_handset(app):
    counter = iter(range(1, 10_000))

    def make(device_id: str | None = None) -> Handset:
        n = next(counter)
        handset = Handset(device_id or f"NC{n:04d}", secrets.token_hex(32), f"+68775{n:04d}")
        with app.app_context(), db.write_session() as session:
            register_device(session, {"device_id": handset.device_id,
                                      "special_number": handset.special_number,
                                      "key": handset.key_hex, "fw_version": "1.0.0"})
        return handset
    return make


@pytest.fixture
def handset(make_handset) -> Handset:
    return make_handset()
