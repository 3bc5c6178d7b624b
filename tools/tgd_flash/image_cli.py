"""The `build-image` and `romfs` commands of tgd-flash (routes a and b, tgd_flash.image)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from . import fwbuild, image
from .errors import UsageError

COMMANDS = ("build-image", "romfs")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build-image", help="route (a): ESP32 image with the firmware frozen (ESP-IDF)")
    p.add_argument("--micropython-src", type=Path,
                   help=f"MicroPython {image.MICROPYTHON_TAG} git clone "
                        "(default: $MICROPYTHON_SRC, else ./micropython)")
    p.add_argument("--board", default=image.DEFAULT_BOARD,
                   help=f"MicroPython board (default {image.DEFAULT_BOARD})")
    p.add_argument("--variant", default=image.DEFAULT_VARIANT,
                   help=f"board variant (default {image.DEFAULT_VARIANT}; 'none' for a board without PSRAM)")
    p.add_argument("--firmware-dir", type=Path, help="TGD firmware sources (default: firmware/ of this checkout)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, build nothing")

    p = sub.add_parser("romfs", help="route (b): the firmware as a ROMFS image (MicroPython >= 1.25 with ROMFS)")
    romfs = p.add_subparsers(dest="romfs_command", required=True, metavar="{build,deploy}")
    b = romfs.add_parser("build", help="compile the firmware and build the ROMFS image file")
    b.add_argument("--output", "-o", type=Path,
                   help=f"image file (default {image.default_romfs_output()})")
    b.add_argument("--chip", default="esp32", help="chip the image is for (default esp32)")
    b.add_argument("--firmware-dir", type=Path, help="TGD firmware sources (default: firmware/ of this checkout)")
    b.add_argument("--dry-run", action="store_true", help="print the commands, build nothing")
    d = romfs.add_parser("deploy", help="write the ROMFS image to the handset, main.py beside it")
    d.add_argument("--port", help="serial port or socket://host:port (default: the only USB serial port)")
    d.add_argument("--image", type=Path,
                   help="a .romfs file from `romfs build` (default: build one for the board)")
    d.add_argument("--firmware-dir", type=Path, help="TGD firmware sources (default: firmware/ of this checkout)")
    d.add_argument("--dry-run", action="store_true", help="print the commands, change nothing")


def run(args: argparse.Namespace, out: TextIO, resolve_port) -> int:
    if args.firmware_dir is not None and not args.firmware_dir.is_dir():
        raise UsageError(f"--firmware-dir {args.firmware_dir}: no such directory (give the firmware/ folder)")
    fw_dir = args.firmware_dir or fwbuild.firmware_dir()
    if args.command == "build-image":
        variant = "" if args.variant.lower() in ("", "none") else args.variant
        image.build_image(out, src=args.micropython_src, board=args.board, variant=variant,
                          firmware_dir=fw_dir, dry_run=args.dry_run)
        return 0
    if args.romfs_command == "build":
        image.build_romfs(out, output=args.output, chip=args.chip, firmware_dir=fw_dir, dry_run=args.dry_run)
        return 0
    port = args.port if (args.port or not args.dry_run) else "<port>"
    image.deploy_romfs(resolve_port(port), out, image_file=args.image, firmware_dir=fw_dir, dry_run=args.dry_run)
    return 0
