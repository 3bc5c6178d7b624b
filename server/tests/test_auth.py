"""Passwords, tokens and settings."""

import os
import stat
from datetime import UTC, datetime

import pytest
from dbcheck import security_events
from sqlalchemy import select, update

from tgd_server import auth, db, settings
from tgd_server.models import ApiToken, User


def test_password_hash_is_argon2id_and_verifies():
    hashed = auth.hash_password("un mot de passe long")
    assert hashed.startswith("$argon2id$")
    user = User(username="u", role="operator", password_hash=hashed, active=True)
    assert auth.verify_password(user, "un mot de passe long")
    assert not auth.verify_password(user, "un mot de passe LONG")
    assert not auth.verify_password(None, "anything at all")
    user.active = False
    assert not auth.verify_password(user, "un mot de passe long")


def test_short_password_and_unknown_role_are_refused():
    with pytest.raises(auth.AuthError):
        auth.hash_password("short")
    with pytest.raises(auth.AuthError):
        auth.require_role("janitor")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_authenticate(app, make_user):
    from server_testkit import PASSWORD
    user = make_user("operator", "marie")
    with app.app_context(), db.write_session() as session:  # a login writes its time
        assert auth.authenticate(session, "marie", PASSWORD).id == user.id
        assert auth.authenticate(session, "marie", "wrong password!") is None
        assert auth.authenticate(session, "nobody", PASSWORD) is None
        with pytest.raises(auth.AuthError):
            auth.create_user(session, "marie", "operator", PASSWORD)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_token_is_stored_hashed_and_can_be_revoked(app, client, api_headers):
    headers = api_headers("supervisor")
    token = headers["Authorization"].split()[1]
    with app.app_context():
        stored = db.get_session().scalar(select(ApiToken.token_hash))
    assert stored != token and stored == auth.token_digest(token)
    assert client.get("/api/v1/devices", headers=headers).status_code == 200
    with app.app_context(), db.write_session() as session:
        session.execute(update(ApiToken).values(revoked_at=datetime.now(UTC)))
    assert client.get("/api/v1/devices", headers=headers).status_code == 401
    assert security_events(app) == ["bad_token"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_token_of_a_disabled_user_is_refused(app, client, api_headers):
    headers = api_headers("supervisor")
    with app.app_context(), db.write_session() as session:
        session.execute(update(User).values(active=False))
    assert client.get("/api/v1/devices", headers=headers).status_code == 401


def test_settings_defaults_and_secret_key_file(tmp_path):
    config = settings.from_environment({"TGD_VAR_DIR": str(tmp_path)})
    assert config["TGD_DATABASE_URL"] == f"sqlite:///{tmp_path / 'tgd.sqlite3'}"
    assert config["SESSION_COOKIE_SECURE"] and config["SESSION_COOKIE_HTTPONLY"]
    key = config["SECRET_KEY_LOADER"]()
    assert len(key) == 64 and config["SECRET_KEY_LOADER"]() == key
    mode = stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode)
    assert mode == 0o600


@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_bad_retention_setting_is_a_clear_error(tmp_path, value):
    with pytest.raises(settings.SettingsError, match="TGD_POSITION_RETENTION_DAYS"):
        settings.from_environment({"TGD_VAR_DIR": str(tmp_path),
                                   "TGD_POSITION_RETENTION_DAYS": value})


def test_secure_cookies_can_be_turned_off_for_the_demo(tmp_path):
    config = settings.from_environment({"TGD_VAR_DIR": str(tmp_path),
                                        "TGD_SECURE_COOKIES": "0"})
    assert config["SESSION_COOKIE_SECURE"] is False


def test_client_address_behind_a_trusted_proxy(tmp_path, monkeypatch):
    from dbcheck import one
    from sqlalchemy import select

    from tgd_server import create_app
    from tgd_server.models import SecurityLog

    for proxies, expected in ((0, "127.0.0.1"), (1, "203.0.113.7")):
        monkeypatch.setenv("TGD_PROXY_COUNT", str(proxies))
        app = create_app({"TGD_DATABASE_URL": f"sqlite:///{tmp_path / f'p{proxies}.sqlite3'}",
                          "TGD_VAR_DIR": str(tmp_path), "SECRET_KEY": "x", "TESTING": True})
        db.create_all(app.extensions["tgd_engine"])
        app.test_client().post("/api/v1/device/messages", data=b"{}",
                               content_type="application/json",
                               headers={"X-Forwarded-For": "203.0.113.7"})
        assert one(app, select(SecurityLog.source)).source == expected
