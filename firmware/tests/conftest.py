"""Collects the firmware tests that run inside the real MicroPython VM.

Every ``firmware/tests/mp/mpt_*.py`` file is a MicroPython module whose
``test_*`` functions (plain or ``async``) run under the unix port. One pytest
item per test function; the VM runs each file once and the items report its
verdicts. A file may ask for another heap with a first-line comment
``# heapsize: 96k`` (the test module and its helpers are compiled into that heap).

The VM is the ESP32-faithful one where it is built (`make esp32-vm`: 32-bit, the
firmware frozen, imported from ".frozen" first as main.py does), otherwise the
PyPI port, which imports the firmware's sources (tgd_flash.micropython_vm).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from tgd_flash.micropython_vm import FALLBACK_HEAP, micropython
from tgd_flash.micropython_vm import executable as micropython_bin

FIRMWARE = Path(__file__).resolve().parents[1]
MP_TESTS = FIRMWARE / "tests" / "mp"
DEFAULT_HEAP = "64k"
RUN_TIMEOUT_S = 300


def run_micropython(args: list[str], heap: str = DEFAULT_HEAP, env: dict | None = None,
                    timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run the MicroPython VM with the firmware and the test helpers on its path."""
    full_env = dict(os.environ)
    # frozen firmware first (the ESP32-faithful VM), as main.py puts it: the sources
    # next to it must not shadow it; the PyPI port has only asyncio there
    full_env["MICROPYPATH"] = f".frozen:{MP_TESTS}:{FIRMWARE}"
    if env:
        full_env.update(env)
    return subprocess.run([micropython_bin(), "-X", f"heapsize={heap}", *args],
                          capture_output=True, text=True, env=full_env, timeout=timeout,
                          cwd=MP_TESTS)


class MpFile(pytest.File):
    def collect(self):
        source = self.path.read_text()
        heap = DEFAULT_HEAP
        m = re.match(r"#\s*heapsize:\s*(\w+)", source)
        if m:
            heap = m.group(1)
        if not micropython().esp32_vm:
            heap = FALLBACK_HEAP  # the PyPI port compiles the whole firmware into its heap
        self.heap = heap
        self._results: dict[str, tuple[str, str]] | None = None
        for name in sorted(set(re.findall(r"^(?:async\s+)?def\s+(test_\w+)\s*\(", source, re.M))):
            yield MpItem.from_parent(self, name=name)

    def results(self) -> dict[str, tuple[str, str]]:
        if self._results is None:
            proc = run_micropython([str(MP_TESTS / "mprun.py"), self.path.stem], heap=self.heap)
            self._results = parse_results(proc.stdout)
            self._output = proc.stdout + proc.stderr
            self._returncode = proc.returncode
        return self._results


def parse_results(out: str) -> dict[str, tuple[str, str]]:
    results: dict[str, tuple[str, str]] = {}
    failing = None
    buf: list[str] = []
    for line in out.splitlines():
        if failing:
            if line == f"ENDFAIL {failing}":
                results[failing] = ("FAIL", "\n".join(buf))
                failing, buf = None, []
            else:
                buf.append(line)
            continue
        parts = line.split(" ", 2)
        if parts[0] == "PASS" and len(parts) >= 2:
            results[parts[1]] = ("PASS", "")
        elif parts[0] == "SKIP" and len(parts) >= 2:
            results[parts[1]] = ("SKIP", parts[2] if len(parts) > 2 else "")
        elif parts[0] == "FAIL" and len(parts) >= 2:
            failing = parts[1]
    return results


class MpItem(pytest.Item):
    def runtest(self):
        parent: MpFile = self.parent  # type: ignore[assignment]
        results = parent.results()
        verdict = results.get(self.name)
        if verdict is None:
            raise MpFailure(f"no verdict from the VM for {self.name} (crash or out of memory?)\n"
                            f"exit code {parent._returncode}\n{parent._output[-4000:]}")
        status, detail = verdict
        if status == "SKIP":
            pytest.skip(detail)
        if status == "FAIL":
            raise MpFailure(detail)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MpFailure):
            return f"MicroPython test {self.name} failed:\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"[micropython] {self.name}"


class MpFailure(Exception):
    pass


def pytest_collect_file(parent, file_path: Path):
    if file_path.suffix == ".py" and file_path.name.startswith("mpt_") and file_path.parent == MP_TESTS:
        return MpFile.from_parent(parent, path=file_path)
    return None
