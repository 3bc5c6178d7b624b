"""A real server process for tests: `tgd-server run` (Werkzeug) or gunicorn, on a fresh
SQLite file (or the given database URL), with the schema migrated."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from tgd_server.probe.process import free_port, listening

BIN = Path(sys.executable).parent


def server_env(var_dir: Path, database_url: str | None = None, **extra: str) -> dict:
    env = {**os.environ, "TGD_VAR_DIR": str(var_dir), "TGD_SECURE_COOKIES": "0",
           "TGD_EVENTS_PG": "0", **extra}
    env.pop("TGD_DATABASE_URL", None)
    if database_url:
        env["TGD_DATABASE_URL"] = database_url
    return env


def admin(env: dict, *args: str) -> str:
    """`flask --app tgd_server ARGS`; its output."""
    done = subprocess.run([str(BIN / "flask"), "--app", "tgd_server", *args], env=env,
                          check=True, capture_output=True, text=True, timeout=120)
    return done.stdout


@contextmanager
def live_server(env: dict, kind: str = "werkzeug", threads: int = 16):
    """Yields the base URL of a running server; stops it at the end."""
    admin(env, "init-db")
    port = free_port()
    if kind == "gunicorn":
        command = [str(BIN / "gunicorn"), "--workers", "1", "--threads", str(threads),
                   "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
                   "tgd_server:create_app()"]
    else:
        command = [str(BIN / "tgd-server"), "run", "--port", str(port)]
    with listening(command, env, port, kind):
        yield f"http://127.0.0.1:{port}"


def raw_request(base_url: str, data: bytes, timeout: float = 10.0) -> int:
    """Send raw request bytes; the answer's status code (0 if the server closed)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(data)
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    line = answer.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else 0
