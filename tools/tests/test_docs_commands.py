"""Every command docs/technician.md and README.md show runs, as written, in a shell.

The commands are read from the documents' code blocks, so a document that changes
is tested as it now reads. Substitutions, the only ones: the server
`https://tgd.opt.nc` is a local test server; the emulator's pty and PWRKEY FIFO,
the virtual board's URL and its flash directory are those the commands print or a
test folder. `git` commands run in a checkout of the firmware (a test one), and
`tgd-flash release` is that checkout's (TGD_FIRMWARE_DIR), its FW_VERSION set to the
page's `--version` after the page's `git tag` of the factory firmware (the page's
procedure: tag at flashing, then a new version). A command that needs a handset (no `--port`, no `--dry-run`, no
`--host-dir`) must have its virtual form in "Practise without a handset", which
runs; batch commands run on two virtual boards named in a `port` column. Any other
command runs exactly as written, so a command added to a page that cannot run
fails here until the page shows a form that can.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from flash_testkit import (
    factory_checkout,
    fake_app_image,
    fake_image,
    make_modem,
    set_fw_version,
    start_board,
)

REPO = Path(__file__).resolve().parents[2]
TECHNICIAN = REPO / "docs" / "technician.md"
README = REPO / "README.md"
BIN = Path(sys.executable).parent
PROGRAMS = ("tgd-flash", "tgd-server", "tgd-rig", "make", "git")
DOC_SERVER = "https://tgd.opt.nc"
PASSWORD = "un mot de passe de banc"


# -- reading the documents ----------------------------------------------------------------

def doc_commands(path: Path) -> list[str]:
    """Lines of indented code blocks that start with one of our programs (continuations joined)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    commands, i = [], 0
    while i < len(lines):
        line = lines[i]
        text = line.strip()
        if line.startswith("    ") and text.split(" ", 1)[0] in PROGRAMS:
            while text.endswith("\\"):
                i += 1
                text = text[:-1].rstrip() + " " + lines[i].strip()
            commands.append(re.sub(r"\s+#.*$", "", text))
        i += 1
    return commands


def doc_output_after(path: Path, command_start: str) -> list[str]:
    """The output lines the document shows under the command that starts so."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith(command_start))
    i = start
    while lines[i].rstrip().endswith("\\"):
        i += 1
    shown = []
    for line in lines[i + 1:]:
        if not line.startswith("    ") or line.strip().split(" ", 1)[0] in PROGRAMS:
            break
        shown.append(line.strip())
    return shown


def needs_a_handset(command: str) -> bool:
    words = command.split()
    return (words[0] == "tgd-flash" and words[1] in ("detect", "flash", "provision", "selftest")
            and not {"--port", "--dry-run", "--host-dir", "--batch"} & set(words))


def virtual_form(command: str, url: str) -> str:
    """The practice section's form: without --image (no ESP bootloader), with --port URL."""
    command = re.sub(r" --image \S+", "", command)
    return f"{command} --port {url}"


def batch_needing_handsets(command: str) -> bool:
    words = command.split()
    return words[0] == "tgd-flash" and "--batch" in words and "--dry-run" not in words


# -- the bench: a shell, a server, the handsets ---------------------------------------------

class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cwd = root / "bench"
        self.home = root / "home"
        self.var = root / "server-var"
        for folder in (self.cwd, self.home, self.var):
            folder.mkdir()
        self.env = {**os.environ, "HOME": str(self.home), "TGD_VAR_DIR": str(self.var),
                    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        for name in ("TGD_TECH_TOKEN", "TGD_DATABASE_URL"):
            self.env.pop(name, None)
        self.subs: dict[str, str] = {}
        self.ran: list[str] = []
        self.background: list[subprocess.Popen] = []

    def substitute(self, command: str) -> str:
        for doc_value, real in self.subs.items():
            command = command.replace(doc_value, real)
        return command

    def run(self, command: str, stdin: str = "", timeout: float = 240, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> str:
        real = self.substitute(command)
        out = subprocess.run(["bash", "-c", real], cwd=cwd or self.cwd, env={**self.env, **(env or {})},
                             input=stdin, capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"{real}\nexit {out.returncode}\n{out.stdout}\n{out.stderr}"
        assert "Traceback" not in out.stderr, out.stderr
        self.ran.append(command)
        return out.stdout

    def run_in_terminal(self, command: str, answers: list[tuple[str, str]]) -> str:
        """In a pseudo-terminal that is the command's controlling terminal (password prompts)."""
        import fcntl
        import termios

        master, slave = os.openpty()
        proc = subprocess.Popen(["bash", "-c", self.substitute(command)], cwd=self.cwd, env=self.env,
                                stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        seen, pending = "", list(answers)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                if pending and pending[0][0] in seen:
                    os.write(master, (pending.pop(0)[1] + "\n").encode())
                    seen = ""
                if not select.select([master], [], [], 0.5)[0]:
                    if proc.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(master, 1024).decode(errors="replace")
                except OSError:  # the command ended: the terminal is gone
                    break
                seen += chunk
            assert proc.wait(timeout=30) == 0, seen
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
        self.ran.append(command)
        return seen

    def start(self, command: str, first_line: str) -> re.Match:
        """A command that runs until Ctrl-C: start it, wait for its line, leave it running."""
        proc = subprocess.Popen(["bash", "-c", "exec " + self.substitute(command)], cwd=self.cwd,
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        self.background.append(proc)
        lines = []
        while True:
            line = proc.stdout.readline()
            assert line, f"{command} ended:\n{''.join(lines)}{proc.stderr.read()}"
            lines.append(line)
            match = re.search(first_line, line)
            if match:
                self.ran.append(command)
                return match

    def stop_all(self) -> None:
        for proc in reversed(self.background):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            assert "Traceback" not in proc.stderr.read()


def start_server(bench: Bench):
    """The real server on the database `tgd-server admin` uses (TGD_VAR_DIR)."""
    from werkzeug.serving import make_server

    from tgd_server import create_app

    app = create_app({"TGD_DATABASE_URL": f"sqlite:///{bench.var / 'tgd.sqlite3'}",
                      "TGD_VAR_DIR": str(bench.var), "TGD_SECURE_COOKIES": False,
                      "SECRET_KEY": "docs-test-secret-key-0123456789abcdef"})
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_port}"


def test_every_technician_command_runs_as_written(tmp_path, network):
    commands = doc_commands(TECHNICIAN)
    assert len(commands) >= 15, commands
    bench = Bench(tmp_path)
    bench.run("tgd-server admin init-db")  # the server is set up (docs/server.md)
    httpd, server_url = start_server(bench)
    bench.subs[DOC_SERVER] = server_url
    extra_boards = []
    try:
        _run_the_page(bench, commands, network, extra_boards)
    finally:
        bench.stop_all()
        for board, modem in extra_boards:
            board.stop()
            modem.close()
        httpd.shutdown()


def _run_the_page(bench: Bench, commands: list[str], network, extra_boards: list) -> None:
    # Before the session: an account and a token, kept in ~/.tgd-token
    create_user = next(c for c in commands if " create-user " in c)
    bench.run_in_terminal(create_user, [("Password", PASSWORD), ("Repeat", PASSWORD)])
    token = bench.run(next(c for c in commands if " create-token " in c)).strip()
    assert token.startswith("tgd_")
    (bench.home / ".tgd-token").write_text(token + "\n")
    (bench.home / ".tgd-token").chmod(0o600)
    image = re.search(r"--image (\S+)", next(c for c in commands if "--image" in c)).group(1)
    fake_image(bench.cwd / image, 0)  # an ESP32 image header

    # Practise without a handset: the emulator, a virtual board, the procedure on it
    emulator = next(c for c in commands if c.startswith("tgd-rig emulator"))
    pty, fifo = bench.start(emulator, r"SIM7600 emulator on (\S+) \(PWRKEY FIFO (\S+)\)").groups()
    doc_line = doc_output_after(TECHNICIAN, "tgd-rig emulator")[0]
    doc_pty, doc_fifo = re.search(r"on (\S+) \(PWRKEY FIFO (\S+)\)", doc_line).groups()
    bench.subs.update({doc_pty: pty, doc_fifo: fifo})
    vboard = next(c for c in commands if c.startswith("tgd-flash virtual-board"))
    doc_flash_dir = re.search(r"--flash-dir (\S+)", vboard).group(1)
    bench.subs[doc_flash_dir] = str(bench.root / "handset")
    url = bench.start(vboard, r"virtual board on (socket://\S+)").group(1)
    doc_url = re.search(r"socket://\S+", doc_output_after(TECHNICIAN, "tgd-flash virtual-board")[0]).group(0)
    bench.subs[doc_url] = url
    practice = [c for c in commands if f"--port {doc_url}" in c]
    assert [c.split()[1] for c in practice] == ["detect", "flash", "provision", "selftest"], practice
    for command in practice:
        output = bench.run(command)
        if command.split()[1] == "selftest":
            assert "RESULT: PASS" in output, output

    # A handset's command: its virtual form is in the practice section (which ran)
    for command in commands:
        if needs_a_handset(command):
            assert virtual_form(command, doc_url) in practice, (
                f"docs/technician.md shows `{command}`, which needs a handset, without its "
                "virtual form under 'Practise without a handset'")
            bench.ran.append(command)

    # Batches: the dry run as written; the others on two virtual boards named in a port column
    for n, (number, imei) in enumerate((("+687751002", "866123045670002"),
                                        ("+687751003", "866123045670003"))):
        flash = bench.root / f"handset{n + 2}"
        # the firmware (main.py, the package folders, fw_manifest.json), not the data
        shutil.copytree(bench.root / "handset", flash,
                        ignore=lambda d, names: [x for x in names if x == "config.json" or not (
                            x.endswith((".py", ".mpy", ".json")) or Path(d, x).is_dir())])
        modem = make_modem(network, msisdn=number, imei=imei, iccid=f"896870100000000000{n + 2}")
        modem.power_on()
        extra_boards.append((start_board(flash, modem), modem))
    rows = [ln for ln in _csv_block().splitlines() if ln and not ln.startswith("#")]
    ports = ["port"] + [board.url for board, _ in extra_boards]
    (bench.cwd / "bench.csv").write_text(
        "\n".join(f"{row},{port}" for row, port in zip(rows, ports, strict=True)) + "\n")
    for command in commands:
        if batch_needing_handsets(command):
            if " flash " in command:  # virtual boards have no bootloader: the dry run shows it
                assert command + " --dry-run" in commands, command
                bench.ran.append(command)
                continue
            output = bench.run(command)
            assert "OK   NC0002" in output and "OK   NC0003" in output, output
    (bench.cwd / "bench.csv").write_text(_csv_block())  # as the page shows it: no port column

    # Production images: tools/tests/test_image_routes.py runs these as written (build-image
    # exits 16 without ESP-IDF; romfs deploy needs a handset whose image has a ROMFS partition)
    bench.ran.extend(c for c in commands if c.split()[1] in ("build-image", "romfs"))

    # Making a release: the offline PC's checkout, its factory firmware tagged by the
    # page's `git tag`, then FW_VERSION set to the page's --version, not committed
    checkout = bench.root / "checkout"
    firmware = factory_checkout(checkout, None)
    release = next(c for c in commands if c.split()[:2] == ["tgd-flash", "release"])
    tagged = False

    # Everything else runs as written
    for command in commands:
        if command in bench.ran:
            continue
        if command.startswith("git "):
            bench.run(command, cwd=checkout)
            tagged = True
            continue
        if command == release:
            assert tagged, "the page makes a release before it tags the factory firmware"
            set_fw_version(firmware, re.search(r"--version (\S+)", release).group(1))
            output = bench.run(command, env={"TGD_FIRMWARE_DIR": str(firmware)})
            assert "1 modules (tgd/device.mpy)" in output and "delta over the factory" in output, output
            continue
        if command.startswith("tgd-flash release ") and "--route app" in command:
            # the app image build-image built (ESP-IDF is not here): a synthetic one where
            # the page says, the firmware at the page's --version
            fake_app_image(bench.cwd / re.search(r"--image (\S+)", command).group(1))
            set_fw_version(firmware, re.search(r"--version (\S+)", command).group(1))
            output = bench.run(command, env={"TGD_FIRMWARE_DIR": str(firmware)})
            assert "route app, the ESP32 app image micropython.bin" in output, output
            continue
        output = bench.run(command)
        if command.startswith("tgd-flash release-verify") and "-app." in command:
            assert "route app: an ESP32 app image, for ESP32 handsets only" in output, output
        elif command.startswith("tgd-flash release-verify"):
            assert re.search(r"delta over the factory firmware \S+ \(commit [0-9a-f]{12}", output), output
        if command.startswith("tgd-flash provision --host-dir"):
            assert output.splitlines() == doc_output_after(TECHNICIAN, "tgd-flash provision --host-dir")
        if "--dry-run" in command:
            assert "--chip esp32 " in output and "would run:" in output, output
    assert set(bench.ran) >= set(commands)


def _csv_block() -> str:
    """The batch file the page shows (the block that starts with a comment and a header)."""
    text = TECHNICIAN.read_text(encoding="utf-8")
    block = re.search(r"\n(    # .*\n    device_id,.*\n(?:    .*\n)+?)\n", text).group(1)
    return "\n".join(line[4:] for line in block.splitlines()) + "\n"


# -- README ---------------------------------------------------------------------------------

def test_readme_commands_run_as_written(tmp_path):
    """`make test` is what CI runs (.ci/run); `make demo` runs as written until its prompt."""
    commands = doc_commands(README)
    assert commands == ["make demo", "make test"], commands
    assert re.search(r"^\s*make test\b", (REPO / ".ci" / "run").read_text(), re.M)
    stamp, pyproject = REPO / ".venv" / ".installed", REPO / "pyproject.toml"
    if not stamp.exists() or stamp.stat().st_mtime < pyproject.stat().st_mtime:
        pytest.skip("the venv is older than pyproject.toml: `make demo` would reinstall it (make venv)")
    import socket

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8080)) == 0:
            pytest.skip("port 8080 is in use: `make demo` serves its console there")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TGD_", "MAKE"))}
    out = subprocess.run(["bash", "-c", "make demo"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Police console: http://127.0.0.1:8080/" in out.stdout
    assert "[Enter] hold handset 1's alarm button" in out.stdout
    assert out.stderr == "", out.stderr  # no log line in the terminal
    assert not re.search(r"\b(INFO|WARNING)\b", out.stdout), out.stdout
