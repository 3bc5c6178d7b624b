"""The security probe (`tgd-server probe`, docs/server.md "Security probe") against the
test server: gunicorn as deployed, trusting one proxy so that the lockout attack comes
from forty addresses. 0 x 5xx, 0 rows from rejected requests, no violation."""

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_the_probe_passes_against_the_test_server(backend, request):
    if backend == "postgresql":
        request.getfixturevalue("pg_schema_url")  # skips when PostgreSQL is unreachable
    # SQLite as docs/server.md shows it; PostgreSQL without the parts that are the same code
    # whatever the database (tested on both backends by their own tests), short phases.
    command = [str(BIN / "tgd-server"), "probe", "--local", backend]
    if backend == "sqlite":
        command += ["--seconds", "2", "--examples", "10"]
    else:
        command += ["--skip", "schema", "--skip", "roles", "--skip", "lockout", "--seconds", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=400)
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("OK ") and "5xx 0," in last
    assert "rows written by rejected requests 0," in last


def test_probe_mistakes_are_one_line():
    for args, flag in ((["--url", "http://127.0.0.1:9"], "--token-technician"),
                       (["--url", "ftp://x", "--token-technician", "t"], "--url"),
                       (["--local", "oracle"], "--local")):
        done = subprocess.run([str(BIN / "tgd-server"), "probe", *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().count("\n") == 0 and flag in done.stderr, done.stderr
