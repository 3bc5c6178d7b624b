"""The console's `tgd-server` subcommands: `screenshots` (docs/operator.md's pictures)
and `basemap-check` (is this PMTiles file a basemap the console can serve?)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import subcommand

NEW_CALEDONIA = (163.5, -23.0, 168.2, -19.5)  # west, south, east, north (Grande Terre, Loyauté)


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


@subcommand("screenshots", help="photograph the police console (desktop and phone) for "
                                "docs/operator.md")
def _configure_screenshots(parser: argparse.ArgumentParser):
    parser.add_argument("--out", default="docs/img", metavar="DIR",
                        help="folder for the PNG files (default: docs/img)")

    def run(args: argparse.Namespace) -> int:
        from .scene import CHROMIUM

        out = Path(args.out)
        if out.exists() and not out.is_dir():
            return _error(f"--out {out} is a file: give a folder")
        if not Path(CHROMIUM).exists():
            return _error(f"no Chromium at {CHROMIUM}: install it (apt-get install chromium)")
        try:
            import playwright  # noqa: F401
        except ImportError:
            return _error("Playwright is not installed: pip install -e '.[dev]'")
        from .screenshots import take

        for path in take(out):
            print(path)
        return 0

    return run


@subcommand("basemap-check", help="check a PMTiles basemap file before setting TGD_BASEMAP "
                                  "(docs/operator.md)")
def _configure_basemap_check(parser: argparse.ArgumentParser):
    parser.add_argument("file", help="the .pmtiles file")

    def run(args: argparse.Namespace) -> int:
        from .basemap import BasemapError, open_archive

        try:
            archive = open_archive(args.file)
        except BasemapError as exc:
            return _error(str(exc))
        info = archive.info
        archive.close()
        kind = "vector (MVT)" if info.vector else f"raster ({info.extension.upper()})"
        west, south, east, north = info.bounds
        print(f"{args.file}: {kind} tiles, zoom {info.min_zoom}-{info.max_zoom}, "
              f"area {west:.2f},{south:.2f} to {east:.2f},{north:.2f}")
        nc_west, nc_south, nc_east, nc_north = NEW_CALEDONIA
        if west > nc_west or south > nc_south or east < nc_east or north < nc_north:
            print("warning: it does not cover all of New Caledonia "
                  f"({nc_west},{nc_south} to {nc_east},{nc_north})")
        if info.max_zoom < 14:
            print(f"warning: zoom {info.max_zoom} at most: streets need 14 or more")
        print(f"ok: set TGD_BASEMAP={Path(args.file).resolve()} and restart the server")
        return 0

    return run
