"""A real server process for tests: `tgd-server run` (Werkzeug) or gunicorn, on a fresh
SQLite file (or the given database URL), with the schema migrated."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{kind} did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


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
