"""A private Mosquitto for the MQTT tests and the MQTT benchmark, run with the
project's configuration.

The security settings and the ACL come from deploy/mosquitto/ (what production
runs); only the listener, the file paths and persistence are the caller's own
(`extra_acl` appends rules, e.g. the benchmark's publisher account). Without the
`mosquitto` binary the tests that need it skip.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "mosquitto"
_TEST_OWN = ("listener", "certfile", "keyfile", "cafile", "password_file", "acl_file",
             "persistence", "persistence_location", "log_dest", "pid_file", "plugin")
GUARD_SOURCE = DEPLOY / "tgd_guard.c"


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def guard_plugin() -> Path | None:
    """deploy/mosquitto/tgd_guard.c built (once per source version) with the command at
    its top, or None without a C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    digest = hashlib.sha256(GUARD_SOURCE.read_bytes()).hexdigest()[:12]
    built = Path(tempfile.gettempdir()) / f"tgd_guard-{digest}.so"
    if not built.exists():
        partial = built.with_suffix(f".{time.time_ns()}.tmp")
        subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(partial),
                        str(GUARD_SOURCE)], check=True, capture_output=True)
        partial.replace(built)
    return built


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class PrivateBroker:
    """`mosquitto -c <project config adapted>` on a free loopback port."""

    def __init__(self, workdir: Path, accounts: list[tuple[str, str]], persistent: bool = True,
                 extra_acl: str = ""):
        self.workdir = workdir
        self.acl = DEPLOY / "acl"
        if extra_acl:
            self.acl = workdir / "acl"
            self.acl.write_text(
                (DEPLOY / "acl").read_text() + "\n# added for this broker\n" + extra_acl + "\n")
        self.port = free_port()
        self.passwd = workdir / "passwd"
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None
        self._write_passwd(accounts)
        self._write_conf(persistent)

    def _write_passwd(self, accounts: list[tuple[str, str]]) -> None:
        for index, (user, password) in enumerate(accounts):
            flags = ["-c"] if index == 0 else []
            subprocess.run(["mosquitto_passwd", *flags, "-b", str(self.passwd), user, password],
                           check=True, capture_output=True)

    def add_account(self, user: str, password: str) -> None:
        subprocess.run(["mosquitto_passwd", "-b", str(self.passwd), user, password],
                       check=True, capture_output=True)
        if self.proc is not None:
            self.proc.send_signal(1)  # SIGHUP: reload the password file
            time.sleep(0.3)

    def _write_conf(self, persistent: bool) -> None:
        kept = [line for line in (DEPLOY / "mosquitto.conf").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")
                and line.split()[0] not in _TEST_OWN]
        # The private listener first: the project's listener options (use_username_as_clientid)
        # follow it, as they follow each listener in the deployed file.
        kept = [f"listener {self.port} 127.0.0.1", *kept]
        guard = guard_plugin()
        kept += [f"plugin {guard}"] if guard is not None else []
        kept += [
            f"password_file {self.passwd}",
            f"acl_file {self.acl}",
            f"persistence {'true' if persistent else 'false'}",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.log}",
            "user root",  # the test runs as root: keep mosquitto able to read its files
        ]
        self.conf.write_text("\n".join(kept) + "\n")

    def start(self) -> PrivateBroker:
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start: {self.log_text()}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """kill -9: no clean shutdown, no last save of the persistence file."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else "(no log)"
