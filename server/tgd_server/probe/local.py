"""`tgd-server probe --local sqlite|postgresql[=URL]`: start a test server (gunicorn, as
deployed, trusting one proxy) on a fresh database, create the probe's accounts and
tokens, and give the probe its arguments. CI and docs/benchmarks.md use it.

SQLite: a new file in a temporary folder. PostgreSQL: a new schema in URL (default
postgresql://postgres@127.0.0.1:5432/test), dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

from .process import free_port, listening

BIN = Path(sys.executable).parent
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROLES = ("operator", "supervisor", "technician", "admin")


def _admin(env: dict, *args: str) -> str:
    done = subprocess.run([str(BIN / "flask"), "--app", "tgd_server", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"flask {args[0]} failed: {done.stderr.strip()[-300:]}")
    return done.stdout


@contextmanager
def _database(spec: str, var_dir: Path):
    kind, _, url = spec.partition("=")
    if kind == "sqlite":
        yield f"sqlite:///{var_dir / 'tgd.sqlite3'}"
        return
    if kind not in ("postgresql", "postgres"):
        raise ValueError(f"--local takes sqlite or postgresql[=URL], got {spec!r}")
    from sqlalchemy import create_engine, text

    from .. import db

    url = db.normalise_url(url or DEFAULT_PG_URL)
    schema = "probe_" + uuid.uuid4().hex[:12]
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def test_server(spec: str, workers: int = 1, threads: int = 16):
    """Yields (base URL, database URL, probe arguments: tokens and login)."""
    with tempfile.TemporaryDirectory(prefix="tgd-probe-") as tmp:
        var_dir = Path(tmp)
        with _database(spec, var_dir) as database_url:
            env = {**os.environ, "TGD_VAR_DIR": str(var_dir), "TGD_SECURE_COOKIES": "0",
                   "TGD_EVENTS_PG": "0", "TGD_PROXY_COUNT": "1",
                   "TGD_DATABASE_URL": database_url}
            _admin(env, "init-db")
            password = secrets.token_urlsafe(12)
            arguments = {"login_user": "probe-login", "login_password": password}
            for role in ROLES:
                _admin(env, "create-user", f"probe-{role}", "--role", role,
                       "--password", password)
                arguments[f"token_{role}"] = _admin(env, "create-token", f"probe-{role}").strip()
            _admin(env, "create-user", "probe-login", "--role", "operator",
                   "--password", password)
            port = free_port()
            command = [str(BIN / "gunicorn"), "--workers", str(workers), "--threads",
                       str(threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
                       "tgd_server:create_app()"]
            with listening(command, env, port, "the test server"):
                yield f"http://127.0.0.1:{port}", database_url, arguments
