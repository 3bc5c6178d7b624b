"""The real commands in real processes: `flask --app tgd_server`, `tgd-server run`."""

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tgd_server.probe.process import free_port, listening

BIN = Path(sys.executable).parent


def _env(tmp_path) -> dict:
    env = {**os.environ, "TGD_VAR_DIR": str(tmp_path), "TGD_SECURE_COOKIES": "0"}
    env.pop("TGD_DATABASE_URL", None)
    return env


def test_flask_admin_commands_and_tgd_server_run(tmp_path):
    env = _env(tmp_path)
    flask = [str(BIN / "flask"), "--app", "tgd_server"]
    subprocess.run([*flask, "init-db"], env=env, check=True, capture_output=True, timeout=60)
    key = secrets.token_hex(32)
    subprocess.run([*flask, "add-device", "NC0042", "--special-number", "+687751042",
                    "--key", key], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    with listening([str(BIN / "tgd-server"), "run", "--port", str(port)], env, port,
                   "tgd-server run"):
        body = json.dumps({"v": 1, "dev": "NC0042", "seq": 1, "type": "heartbeat",
                           "t": int(time.time()), "fix": {"m": "N"}, "cell": None, "bat": 4000,
                           "csq": 20, "fw": "1.0.0"}, separators=(",", ":")).encode()
        signature = hmac.new(bytes.fromhex(key), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/device/messages", data=body, method="POST",
            headers={"Content-Type": "application/json", "X-TGD-Signature": signature})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read()) == {"ok": True, "seq": 1, "cmds": []}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 409
    assert (tmp_path / "tgd.sqlite3").exists() and (tmp_path / "secret_key").exists()
