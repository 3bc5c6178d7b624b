"""The production image routes: which MicroPython image a handset runs, and how
the TGD firmware gets into it (docs/technician.md, "Production images").

(a) ``build-image``: an ESP32 image with the firmware frozen (ESP-IDF's
    ``make -C ports/esp32 BOARD=... FROZEN_MANIFEST=firmware/manifest.py``);
    the bytecode stays in flash. Flashed with ``flash --image``, which then
    uploads only the boot script.
(b) ``romfs build`` / ``romfs deploy``: the compiled firmware as a ROMFS image
    (``mpremote romfs``) for a MicroPython >= 1.25 built with a ROMFS
    partition; the bytecode runs in place from flash too.
(c) ``flash``: stock MicroPython plus the firmware uploaded as ``.mpy`` files,
    whose bytecode is loaded into the heap: only for boards with PSRAM.

Planning (which commands) is kept apart from running them, so ``--dry-run``
prints exactly what runs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import freeze_manifest, fwbuild
from .board import Board
from .errors import BoardError, FirmwareMissing, FlashToolError, UsageError

MICROPYTHON_TAG = "v1.28.0"  # the release the ESP32-faithful VM is built from (../shared/micropython)
MICROPYTHON_GIT = "https://github.com/micropython/micropython.git"
DEFAULT_BOARD = "ESP32_GENERIC"
DEFAULT_VARIANT = "SPIRAM"  # the LilyGO T-SIM7600 has PSRAM
ROMFS_PARTITION_CSV = "partitions-4MiB-romfs.csv"  # in ports/esp32: a 128 KiB romfs partition


class NoEspIdf(FlashToolError):
    """No ESP-IDF environment or no MicroPython ESP32 source here: the commands were printed."""

    exit_code = 16


class NoRomfs(FlashToolError):
    """The board's MicroPython has no ROMFS partition, or it is too small."""

    exit_code = 17


class ImageBuildFailed(FlashToolError):
    exit_code = 18


def show(argv: list[str]) -> str:
    return shlex.join(argv)


# -- what goes where -----------------------------------------------------------
def boot_scripts(src_dir: Path, frozen_targets: list[str]) -> list[Path]:
    """The scripts MicroPython runs by file name at boot (main.py), unless frozen.

    A frozen image and a ROMFS image still need them on the board's filesystem:
    the board runs ``main.py`` from there (or from the frozen modules), never
    from ``/rom``.
    """
    return [
        Path(src_dir) / name for name in fwbuild.SOURCE_ONLY
        if (Path(src_dir) / name).is_file() and name not in frozen_targets
    ]


def module_name(target: str) -> str:
    """'tgd/alarm.py' -> 'tgd.alarm' (what `import` names)."""
    name = target[:-3] if target.endswith(".py") else target
    return name.replace("/", ".").removesuffix(".__init__")


# -- (a) the ESP32 image with the firmware frozen --------------------------------
@dataclass(frozen=True)
class ImageBuild:
    src: Path  # MicroPython source tree (a git clone: ports/esp32 is needed)
    board: str
    variant: str  # "" for none
    manifest: Path  # absolute

    @property
    def esp32_dir(self) -> Path:
        return self.src / "ports" / "esp32"

    @property
    def board_args(self) -> list[str]:
        return [f"BOARD={self.board}"] + ([f"BOARD_VARIANT={self.variant}"] if self.variant else [])

    @property
    def output(self) -> Path:
        suffix = f"-{self.variant}" if self.variant else ""
        return self.esp32_dir / f"build-{self.board}{suffix}" / "firmware.bin"

    def commands(self) -> list[list[str]]:
        esp32 = str(self.esp32_dir)
        return [
            ["make", "-C", str(self.src / "mpy-cross")],
            ["make", "-C", esp32, *self.board_args, "submodules"],
            ["make", "-C", esp32, *self.board_args, f"FROZEN_MANIFEST={self.manifest}"],
        ]


def check_board(plan: ImageBuild) -> None:
    """--board and --variant name a board definition of that MicroPython (before a long build)."""
    boards = plan.esp32_dir / "boards"
    board_dir = boards / plan.board
    if not board_dir.is_dir():
        known = sorted(p.name for p in boards.glob("*") if p.is_dir() and p.name.isupper())
        raise UsageError(f"--board {plan.board}: no such board in {boards} "
                         f"(e.g. {', '.join(known[:4]) or DEFAULT_BOARD})")
    if plan.variant and not (board_dir / f"mpconfigvariant_{plan.variant}.cmake").is_file():
        variants = sorted(p.stem.removeprefix("mpconfigvariant_")
                          for p in board_dir.glob("mpconfigvariant_*.cmake"))
        raise UsageError(f"--variant {plan.variant}: {plan.board} has no such variant "
                         f"(it has: {', '.join(variants) or 'none'}; `--variant none` for the plain board)")


def esp_idf_missing() -> str | None:
    """Why there is no ESP-IDF environment here, or None when there is one."""
    if not os.environ.get("IDF_PATH"):
        return "IDF_PATH is not set"
    if shutil.which("idf.py") is None:
        return "idf.py is not on PATH"
    return None


def default_micropython_src() -> Path:
    env = os.environ.get("MICROPYTHON_SRC")
    return Path(env) if env else Path("micropython")


def build_image(
    out: TextIO,
    src: Path | None = None,
    board: str = DEFAULT_BOARD,
    variant: str = DEFAULT_VARIANT,
    firmware_dir: Path | None = None,
    dry_run: bool = False,
) -> Path | None:
    """Route (a): run the ESP-IDF build where it can run, else print it."""
    fw_dir = Path(firmware_dir or fwbuild.firmware_dir()).resolve()
    manifest = freeze_manifest.manifest_path(fw_dir)
    frozen = freeze_manifest.firmware_files(fw_dir)  # a broken manifest is found here, not in IDF
    src = Path(src or default_micropython_src()).resolve()
    note = None
    if src.is_file():  # e.g. the archive the VM is built from: it has no ports/esp32
        note = f"{src} is an archive without ports/esp32: the image needs a git clone"
        src = Path("micropython").resolve()
    plan = ImageBuild(src, board, variant, manifest)
    missing = esp_idf_missing()
    if note:
        print(note, file=out)
    if missing is None and not (plan.esp32_dir / "Makefile").is_file():
        missing = f"no MicroPython ESP32 port in {plan.src} (give --micropython-src or $MICROPYTHON_SRC)"
    if (plan.esp32_dir / "Makefile").is_file():
        check_board(plan)
    if dry_run or missing:
        _print_image_recipe(plan, out, missing, dry_run)
        if dry_run:
            return None
        raise NoEspIdf(
            f"cannot build the ESP32 image here: {missing}; run the commands above on a machine "
            "with ESP-IDF (exit code 16)"
        )
    print(f"building the ESP32 image ({len(frozen)} firmware modules frozen) in {plan.src}", file=out)
    for argv in plan.commands():
        print("run: " + show(argv), file=out, flush=True)
        if subprocess.run(argv).returncode != 0:
            raise ImageBuildFailed(f"the ESP32 image build failed at: {show(argv)} (see its output above)")
    if not plan.output.is_file():
        raise ImageBuildFailed(f"the build finished but {plan.output} is not there")
    print(f"image: {plan.output}", file=out)
    print(f"next: tgd-flash flash --image {shlex.quote(str(plan.output))}", file=out)
    return plan.output


def _print_image_recipe(plan: ImageBuild, out: TextIO, missing: str | None, dry_run: bool) -> None:
    if missing and not dry_run:
        print(f"no ESP32 build environment here ({missing}); on a machine with ESP-IDF run:", file=out)
    elif missing:
        print(f"(no ESP32 build environment here: {missing}); the build is:", file=out)
    prefix = "would run: " if dry_run else "  "
    if not (plan.esp32_dir / "Makefile").is_file():
        clone = ["git", "clone", "--depth", "1", "--branch", MICROPYTHON_TAG, MICROPYTHON_GIT, str(plan.src)]
        print(prefix + show(clone), file=out)
    if missing and missing.startswith(("IDF_PATH", "idf.py")):
        print("  (first, in that shell: . $IDF_PATH/export.sh, with the ESP-IDF version that "
              "ports/esp32/README.md of this MicroPython names)", file=out)
    for argv in plan.commands():
        print(prefix + show(argv), file=out)
    print(f"then: tgd-flash flash --image {shlex.quote(str(plan.output))}", file=out)


# -- (b) the ROMFS image ---------------------------------------------------------
@dataclass(frozen=True)
class RomfsPlan:
    compile: list[tuple[freeze_manifest.FirmwareFile, Path, list[str]]]  # (file, staged .mpy, mpy-cross argv)
    build: list[str]  # mpremote romfs build argv
    output: Path


def plan_romfs(
    src_dir: Path, stage: Path, output: Path, march: str | None, compiler: list[str] | None = None
) -> RomfsPlan:
    """Every file of the manifest compiled into ``stage`` (its path kept), then one image.

    Only the manifest's modules go in (nothing host-only, no tests); they are
    compiled here with the project's mpy-cross options, so mpremote is told
    not to compile (``--no-mpy``): it would write .mpy files next to the sources.
    """
    steps = []
    for f in freeze_manifest.firmware_files(src_dir):
        staged = stage / (f.target[:-3] + ".mpy")
        argv = fwbuild.compile_command(f.source, staged, march, compiler)
        # -s: the name tracebacks show is the module's path in the image
        argv[argv.index("-s") + 1] = f.target
        steps.append((f, staged, argv))
    build = [sys.executable, "-m", "mpremote", "romfs", "-o", str(output), "--no-mpy", "build", str(stage)]
    return RomfsPlan(steps, build, output)


def run_romfs_plan(plan: RomfsPlan, out: TextIO) -> int:
    for f, staged, argv in plan.compile:
        staged.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise FirmwareMissing(f"mpy-cross failed on {f.target}: {result.stderr.strip()}")
    plan.output.parent.mkdir(parents=True, exist_ok=True)
    print("run: " + show(plan.build), file=out, flush=True)
    result = subprocess.run(plan.build, capture_output=True, text=True)
    if result.returncode != 0 or not plan.output.is_file():
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ImageBuildFailed(f"mpremote romfs build failed: {detail[-1] if detail else result.returncode}")
    size = plan.output.stat().st_size
    print(f"ROMFS image {plan.output}: {size} bytes, {len(plan.compile)} modules", file=out)
    return size


def default_romfs_output() -> Path:
    return Path("build") / "tgd-firmware.romfs"


def build_romfs(
    out: TextIO,
    output: Path | None = None,
    chip: str = "esp32",
    firmware_dir: Path | None = None,
    dry_run: bool = False,
    compiler: list[str] | None = None,
) -> Path | None:
    """Route (b), first half: the ROMFS image file of the compiled firmware."""
    src_dir = Path(firmware_dir or fwbuild.firmware_dir())
    if chip not in fwbuild.CHIP_ARCH:
        raise UsageError(f"--chip {chip}: unknown; give one of {', '.join(sorted(fwbuild.CHIP_ARCH))}")
    output = Path(output or default_romfs_output())
    if output.exists() and output.is_dir():
        raise UsageError(f"--output {output} is a directory: give a file name, e.g. {output / 'tgd.romfs'}")
    march = fwbuild.CHIP_ARCH[chip]
    if dry_run:
        plan = plan_romfs(src_dir, Path("<stage>"), output, march, compiler)
        for _, _, argv in plan.compile:
            print("would run: " + show(argv), file=out)
        print("would run: " + show(plan.build), file=out)
        return None
    with tempfile.TemporaryDirectory(prefix="tgd-romfs-") as tmp:
        plan = plan_romfs(src_dir, Path(tmp) / "rom", output, march, compiler)
        run_romfs_plan(plan, out)
    return output


# Runs on the board: (number of ROMFS partitions, size of the first), -1 without ROMFS support.
_ROMFS_QUERY = """
try:
    import vfs
    _n = vfs.rom_ioctl(1)
    print(repr((_n, len(vfs.rom_ioctl(2, 0)) if _n > 0 else 0)))
except Exception:
    print(repr((-1, 0)))
"""


def romfs_capacity(board: Board) -> int:
    """Bytes of the board's ROMFS partition 0; NoRomfs when it has none."""
    count, size = board.eval_code(_ROMFS_QUERY)
    if count <= 0 or size <= 0:
        raise NoRomfs(
            f"the MicroPython on {board.port} has no ROMFS partition (route b needs a MicroPython "
            ">= 1.25 image built with one): flash such an image, or use `tgd-flash build-image` "
            "(route a) or `tgd-flash flash` (route c, boards with PSRAM)"
        )
    return int(size)


def deploy_command(port: str, image_file: Path) -> list[str]:
    return [sys.executable, "-m", "mpremote", "connect", port, "romfs", "deploy", str(image_file)]


def deploy_romfs(
    port: str,
    out: TextIO,
    image_file: Path | None = None,
    firmware_dir: Path | None = None,
    dry_run: bool = False,
) -> None:
    """Route (b), second half: the image into the board's ROMFS partition, main.py beside it."""
    from .flashing import open_when_ready, upload

    src_dir = Path(firmware_dir or fwbuild.firmware_dir())
    targets = freeze_manifest.read_manifest(freeze_manifest.manifest_path(src_dir)).targets()
    scripts = boot_scripts(src_dir, targets)
    if image_file is not None and not Path(image_file).is_file():
        raise UsageError(f"--image {image_file}: no such file (build it with `tgd-flash romfs build`)")
    if dry_run:
        print(f"would check that the MicroPython on {port} has a ROMFS partition large enough", file=out)
        if image_file is None:  # built for the board's MicroPython, in a temporary directory
            image_file = Path("<tmp>") / "tgd-firmware.romfs"
            build_romfs(out, image_file, firmware_dir=src_dir, dry_run=True)
        print("would run: " + show(deploy_command(port, Path(image_file))), file=out)
        names = ", ".join(p.name for p in scripts) or "nothing"
        print(f"would upload {names} to {port} (sha256 checked on the board), remove the firmware "
              "modules left on its filesystem (they would shadow /rom), soft-reset and check that "
              "the firmware imports from /rom", file=out)
        return
    with tempfile.TemporaryDirectory(prefix="tgd-romfs-") as tmp:
        with open_when_ready(port, 0) as board:
            impl = board.implementation()
            emitted = fwbuild.mpy_cross_version()
            if image_file is not None and (impl.mpy_version, impl.mpy_sub_version) != emitted:
                raise fwbuild.MpyMismatch(
                    f"--image {image_file} holds mpy v{emitted[0]}.{emitted[1]} bytecode and the board "
                    f"runs MicroPython {impl.version} (mpy v{impl.mpy_version}.{impl.mpy_sub_version}): "
                    "leave out --image, and deploy builds the image for the board"
                )
            compiler = fwbuild.compiler_for(impl, emitted)
            capacity = romfs_capacity(board)
        if image_file is None:
            image_file = Path(tmp) / "tgd-firmware.romfs"
            plan = plan_romfs(src_dir, Path(tmp) / "rom", image_file, fwbuild.arch_for(impl), compiler)
            run_romfs_plan(plan, out)
        size = Path(image_file).stat().st_size
        if size > capacity:
            raise NoRomfs(f"the ROMFS image is {size} bytes and the partition on {port} {capacity}: "
                          "use a larger romfs partition, or route (a)")
        argv = deploy_command(port, Path(image_file))
        print("run: " + show(argv), file=out, flush=True)
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise BoardError(f"mpremote romfs deploy failed on {port}: {detail[-1] if detail else '?'}")
        with open_when_ready(port, 10) as board:
            version = fwbuild.firmware_version(src_dir)
            files = [fwbuild.BuildFile(p.name, p, fwbuild.sha256_file(p)) for p in scripts]
            upload(board, files, version, out, fwbuild.package_dirs(src_dir))
            board.soft_reset()
            check_imports_from(board, "/rom/", targets)
    print(f"firmware {version} deployed as ROMFS on {port} ({size} bytes)", file=out)


def check_imports_from(board: Board, prefix: str, targets: list[str]) -> None:
    """The firmware's first module imports from ``prefix`` ("/rom/", or "" for frozen)."""
    probe = next((t for t in targets if t.endswith(".py")), None)
    if probe is None:
        return
    where = board.eval(f"getattr(__import__({module_name(probe)!r}), '__file__', '')")
    if not str(where).startswith(prefix):
        raise BoardError(f"{module_name(probe)} imports from {where!r}, not from {prefix}: deploy again")


# -- (a) on the board: a frozen image needs only its boot script ---------------------
def parse_help_modules(text: str) -> set[str]:
    """Module names from ``help('modules')``: 'asyncio/__init__' -> 'asyncio', 'tgd/app' -> 'tgd.app'."""
    names = set()
    for line in text.splitlines():
        if line.startswith("Plus "):
            break
        names.update(module_name(word + ".py") for word in line.split())
    return names


def frozen_modules(board: Board) -> set[str]:
    """Names of the modules built into the board's image (``help('modules')``)."""
    return parse_help_modules(board.run("help('modules')", timeout_s=20))


def firmware_is_frozen(board: Board, src_dir: Path) -> bool:
    """True when the board's image freezes every module of the firmware manifest.

    Some but not all is an image of another firmware version: refused, since
    uploading .mpy files next to it would run a mix of both.
    """
    manifest = freeze_manifest.manifest_path(src_dir)
    if not manifest.is_file():
        return False  # a firmware tree without a manifest cannot be frozen
    wanted = {module_name(t) for t in freeze_manifest.read_manifest(manifest).targets()}
    present = wanted & frozen_modules(board)
    if present and present != wanted:
        missing = ", ".join(sorted(wanted - present)[:5])
        raise FirmwareMissing(
            f"the image on {board.port} freezes another version of the firmware (it lacks {missing}): "
            "build the image again (`tgd-flash build-image`) and flash it"
        )
    return bool(present)


def print_frozen_plan(src_dir: Path, port: str, out: TextIO) -> None:
    manifest = freeze_manifest.manifest_path(src_dir)
    targets = freeze_manifest.read_manifest(manifest).targets() if manifest.is_file() else []
    names = ", ".join(p.name for p in boot_scripts(src_dir, targets)) or "nothing"
    print(f"would check that the image on {port} freezes the firmware ({len(targets)} modules of "
          f"{manifest}), then upload {names} (sha256 checked on the board) and remove the "
          "firmware files left on its filesystem", file=out)


def files_for_board(
    board: Board, src_dir: Path, build_dir: Path, march: str | None, compiler: list[str],
    out: TextIO, detect: bool = False, frozen_required: bool = False,
) -> list[fwbuild.BuildFile]:
    """What `flash` uploads: the boot script alone on a frozen image, else the .mpy build.

    The image is looked at after `flash --image` (a new image may freeze the
    firmware) and with `--frozen`; an update without either uploads .mpy files.
    """
    if (detect or frozen_required) and firmware_is_frozen(board, src_dir):
        targets = freeze_manifest.read_manifest(freeze_manifest.manifest_path(src_dir)).targets()
        scripts = boot_scripts(src_dir, targets)
        print("the firmware is frozen in the board's image (route a): uploading only "
              + (", ".join(p.name for p in scripts) or "the manifest"), file=out)
        return [fwbuild.BuildFile(p.name, p, fwbuild.sha256_file(p)) for p in scripts]
    if frozen_required:
        raise FirmwareMissing(
            f"--frozen: the MicroPython on {board.port} does not have the firmware frozen in it; "
            "flash the image from `tgd-flash build-image` with --image, or leave out --frozen"
        )
    warn_if_no_psram(board, out)
    return fwbuild.build(src_dir, build_dir, march, compiler)


# Route (c) loads ~87 KB of code into the heap (docs/benchmarks.md): a board
# without PSRAM (an ESP32 heap is ~100-200 KB) should take route (a).
PSRAM_HEAP_BYTES = 256 * 1024


def heap_total(board: Board) -> int:
    return int(board.eval("(lambda g: (g.collect(), g.mem_free() + g.mem_alloc())[1])(__import__('gc'))"))


def warn_if_no_psram(board: Board, out: TextIO) -> None:
    total = heap_total(board)
    if total < PSRAM_HEAP_BYTES:
        print(f"warning: the MicroPython on {board.port} has a {total // 1024} KB heap (no PSRAM): "
              "the uploaded .mpy files load the firmware's code into it; for a handset use "
              "route (a), `tgd-flash build-image` (docs/technician.md, \"Production images\")", file=out)
