"""`tgd-server` as an administrator types it: plausible mistakes get one line, admin output stays clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TGD_SERVER = Path(sys.executable).with_name("tgd-server")


def tgd_server(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TGD_VAR_DIR": str(tmp_path / "var")}
    env.pop("TGD_DATABASE_URL", None)
    return subprocess.run([str(TGD_SERVER), *args], input=stdin if stdin is not None else "",
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)


def test_run_refuses_a_port_out_of_range(tmp_path):
    for port in ("99999", "0", "http"):
        out = tgd_server(tmp_path, "run", "--port", port)
        assert out.returncode == 2 and out.stdout == ""
        line = out.stderr.strip()
        assert len(line.splitlines()) == 1 and "--port" in line and "1 to 65535" in line, line


def test_admin_commands_print_no_alembic_lines(tmp_path):
    out = tgd_server(tmp_path, "admin", "init-db")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("database at revision ") and out.stderr == ""
    out = tgd_server(tmp_path, "admin", "create-user", "alice", "--role", "technician",
                     "--password-stdin", stdin="un mot de passe long\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "user alice (technician) created\n" and out.stderr == ""


def test_create_user_without_a_terminal_names_the_options(tmp_path):
    assert tgd_server(tmp_path, "admin", "init-db").returncode == 0
    out = tgd_server(tmp_path, "admin", "create-user", "alice", "--role", "technician")
    assert out.returncode == 1
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1 and "--password-stdin" in line and "Aborted" not in line
    out = tgd_server(tmp_path, "admin", "create-user", "alice", "--role", "technician",
                     "--password-stdin", stdin="\n")
    assert out.returncode == 1 and "empty" in out.stderr
    # nothing was created: the name is still free
    out = tgd_server(tmp_path, "admin", "create-user", "alice", "--role", "technician",
                     "--password-stdin", stdin="un mot de passe long\n")
    assert out.returncode == 0, out.stderr
