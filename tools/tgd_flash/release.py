"""`tgd-flash release-key | release | release-verify`: signed over-the-air releases.

    tgd-flash release-key --out DIR             DIR/release.key (0600) + DIR/release.pub
    tgd-flash release --key FILE --version X [--firmware DIR] --out FILE.tgdrel
    tgd-flash release-verify FILE.tgdrel --pub FILE
    tgd-flash release-upload FILE.tgdrel --server URL --token-file FILE   (technician token)

The bundle is the handset modules compiled by the ESP32-faithful VM's mpy-cross
(build/esp32-vm/mpy-cross), walked from the firmware tree (subfolders included, as
packages), never the host board's folder (firmware/host/), the build manifest
(manifest.py), the tests, or main.py (the entry script stays in the factory image: it
is what picks the slot, like a bootloader, so an update cannot break it).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import TextIO

from . import release_file, release_sign
from .errors import FlashToolError, UsageError
from .fwbuild import firmware_dir

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MPY_CROSS = REPO / "build" / "esp32-vm" / "mpy-cross"
NOT_IN_BUNDLE_FILES = {"manifest.py", "main.py", "boot.py"}
NOT_IN_BUNDLE_DIRS = {"host", "tests", "__pycache__"}
COMMANDS = ("release-key", "release", "release-verify", "release-upload")


class ReleaseRefused(FlashToolError):
    exit_code = 19


def add_parsers(sub) -> None:
    p = sub.add_parser("release-key", help="generate the Ed25519 release key pair (offline PC)")
    p.add_argument("--out", type=Path, help="directory for release.key (private) and release.pub")
    p.add_argument("--overwrite", action="store_true", help="replace an existing key pair")

    p = sub.add_parser("release", help="build and sign an over-the-air release (.tgdrel)")
    p.add_argument("--key", type=Path, help="the private release key file (release.key)")
    p.add_argument("--version", help="the firmware version this release installs, e.g. 1.1.0")
    p.add_argument("--min", dest="min_version", default="0.0.0",
                   help="oldest running firmware that may take it (default 0.0.0: any)")
    p.add_argument("--firmware", type=Path, help="firmware sources (default: firmware/ of this checkout)")
    p.add_argument("--mpy-cross", type=Path, default=DEFAULT_MPY_CROSS,
                   help="mpy-cross for the handsets (default: build/esp32-vm/mpy-cross)")
    p.add_argument("--out", type=Path, help="the release file to write, e.g. tgd-1.1.0.tgdrel")

    p = sub.add_parser("release-verify", help="check a .tgdrel against a release public key")
    p.add_argument("file", type=Path, help="the .tgdrel file")
    p.add_argument("--pub", type=Path, help="the release public key file (release.pub)")

    p = sub.add_parser("release-upload", help="put a .tgdrel on the server (technician token)")
    p.add_argument("file", type=Path, help="the .tgdrel file")
    p.add_argument("--server", help="server base URL, e.g. https://tgd.opt.nc")
    p.add_argument("--token", help="technician API token (better: $TGD_TECH_TOKEN or --token-file)")
    p.add_argument("--token-file", type=Path)


def run(args: argparse.Namespace, out: TextIO) -> int:
    return {"release-key": cmd_release_key, "release": cmd_release,
            "release-verify": cmd_release_verify,
            "release-upload": cmd_release_upload}[args.command](args, out)


# -- files ---------------------------------------------------------------------------------

def write_private(path: Path, text: str) -> None:
    """Created 0600 from the start (never world-readable, even for an instant)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def read_seed(path: Path) -> bytes:
    if path.suffix == ".pub":
        raise UsageError(f"--key {path}: that is the public key; give the private release.key")
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise UsageError(f"--key {path}: cannot read it ({exc.strerror}); give the release.key "
                         "that `tgd-flash release-key` wrote") from exc
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise UsageError(f"--key {path}: not a release private key (64 hex digits); give the "
                         "release.key, not release.pub")
    if path.stat().st_mode & 0o077:
        raise UsageError(f"--key {path}: readable by others; `chmod 600 {path}` first")
    return seed


def read_pub(path: Path, flag: str = "--pub") -> bytes:
    if path.suffix == ".key":
        raise UsageError(f"{flag} {path}: that is the private key; give release.pub (and put "
                         "the private key back offline)")
    try:
        return release_file.parse_pub_hex(path.read_text())
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot read it ({exc.strerror}); give the release.pub "
                         "that `tgd-flash release-key` wrote") from exc
    except ValueError as exc:
        raise UsageError(f"{flag} {path}: not a release public key (64 hex digits)") from exc


# -- bundle ----------------------------------------------------------------------------------

def bundle_sources(src: Path) -> list[tuple[str, Path]]:
    """(path in the bundle without suffix, source) of every handset module, sorted."""
    found = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in NOT_IN_BUNDLE_DIRS and not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(".py") or name in NOT_IN_BUNDLE_FILES:
                continue
            path = Path(root) / name
            found.append((path.relative_to(src).with_suffix("").as_posix(), path))
    return sorted(found)


_FW_VERSION = re.compile(r"""^FW_VERSION\s*=\s*["']([^"']+)["']""", re.MULTILINE)


def declared_version(src: Path) -> str | None:
    """FW_VERSION = "x.y.z" as the firmware's modules define it (wherever the module is)."""
    for _, path in bundle_sources(src):
        match = _FW_VERSION.search(path.read_text(encoding="utf-8", errors="replace"))
        if match:
            return match.group(1)
    return None


def compile_bundle(src: Path, mpy_cross: Path) -> list[tuple[str, bytes]]:
    sources = bundle_sources(src)
    if not sources:
        raise UsageError(f"--firmware {src}: no handset modules (*.py) there; give the firmware folder")
    if not mpy_cross.is_file():
        raise UsageError(f"--mpy-cross {mpy_cross}: not found; `make esp32-vm` builds it")
    files = []
    with tempfile.TemporaryDirectory(prefix="tgd-release-") as tmp:
        for rel, path in sources:
            out = Path(tmp) / (rel.replace("/", "__") + ".mpy")
            # -s: a traceback names the module, not this PC's path
            cmd = [str(mpy_cross), "-o", str(out), "-s", f"{rel}.py", str(path)]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
                raise ReleaseRefused(f"mpy-cross failed on {rel}.py: {why[0]}")
            files.append((f"{rel}.mpy", out.read_bytes()))
    return files


# -- commands --------------------------------------------------------------------------------

def cmd_release_key(args: argparse.Namespace, out: TextIO) -> int:
    if args.out is None:
        raise UsageError("--out DIR is required: the folder (on the offline key medium) for "
                         "release.key and release.pub")
    key, pub = args.out / "release.key", args.out / "release.pub"
    if (key.exists() or pub.exists()) and not args.overwrite:
        raise UsageError(f"--out {args.out}: a release key is already there; choose another "
                         "folder (or --overwrite, which loses the old key)")
    args.out.mkdir(parents=True, exist_ok=True)
    seed = release_sign.new_seed()
    public = release_sign.public_key(seed)
    write_private(key, seed.hex() + "\n")
    pub.write_text(public.hex() + "\n")
    print(f"release key {release_sign.key_id(public)}: private {key} (mode 0600, keep it offline), "
          f"public {pub}", file=out)
    return 0


def cmd_release(args: argparse.Namespace, out: TextIO) -> int:
    if args.key is None:
        raise UsageError("--key FILE is required: the release.key from `tgd-flash release-key`")
    if not args.version:
        raise UsageError("--version is required: the version this release installs, e.g. --version 1.1.0")
    if args.out is None:
        raise UsageError(f"--out FILE is required, e.g. --out tgd-{args.version}.tgdrel")
    for flag, value in (("--version", args.version), ("--min", args.min_version)):
        if not release_file.VERSION_RE.match(value):
            raise UsageError(f"{flag} {value}: give a version of numbers and dots, e.g. 1.1.0")
    seed = read_seed(args.key)
    src = args.firmware or firmware_dir()
    if not src.is_dir():
        raise UsageError(f"--firmware {src}: no such folder; give the firmware sources")
    declared = declared_version(src)
    if declared != args.version:
        raise UsageError(f"--version {args.version}: the firmware in {src} says FW_VERSION = "
                         f"{declared!r}; set FW_VERSION to {args.version!r} there first (a handset "
                         "reports FW_VERSION, and the roll-out waits for it)")
    files = compile_bundle(src, args.mpy_cross)
    data = release_file.build_release(seed, args.version, files, args.min_version)
    args.out.write_bytes(data)
    release = release_file.check_release(data, [release_sign.public_key(seed)])
    print(f"release {args.version}: {len(files)} modules, bundle {len(release.bundle)} bytes, "
          f"sha256 {release.manifest['sha256'][:16]}..., key {release.manifest['key']} -> {args.out}",
          file=out)
    return 0


def cmd_release_verify(args: argparse.Namespace, out: TextIO) -> int:
    if args.pub is None:
        raise UsageError("--pub FILE is required: the release.pub the handsets trust")
    pub = read_pub(args.pub)
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise UsageError(f"{args.file}: cannot read it ({exc.strerror})") from exc
    try:
        release = release_file.check_release(data, [pub])
    except release_file.ReleaseError as exc:
        raise ReleaseRefused(f"{args.file}: refused: {exc}") from exc
    m = release.manifest
    print(f"{args.file}: OK, version {m['version']} (min {m['min']}), {len(release.files)} files, "
          f"{m['size']} bytes, key {m['key']}", file=out)
    return 0


def cmd_release_upload(args: argparse.Namespace, out: TextIO) -> int:
    from .cli import server_target
    from .serverapi import upload_release

    target = server_target(args, required=True)
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise UsageError(f"{args.file}: cannot read it ({exc.strerror}); give the .tgdrel that "
                         "`tgd-flash release` wrote") from exc
    answer = upload_release(target, data)
    print(f"release {answer['version']} on {target.base_url} ({answer['size']} bytes, key "
          f"{answer['key']}); start its roll-out with `tgd-server rollout start`", file=out)
    return 0
