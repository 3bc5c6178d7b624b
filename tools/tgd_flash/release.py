"""`tgd-flash release-key | release | release-verify`: signed over-the-air releases.

    tgd-flash release-key --out DIR             DIR/release.key (0600) + DIR/release.pub
    tgd-flash release --key FILE --version X [--base REF] [--firmware DIR] --out FILE.tgdrel
    tgd-flash release --route app --image micropython.bin --key FILE --version X --out FILE.tgdrel
    tgd-flash release-verify FILE.tgdrel --pub FILE
    tgd-flash release-upload FILE.tgdrel --server URL --token-file FILE   (technician token)

The bundle is the handset modules compiled by the ESP32-faithful VM's mpy-cross
(build/esp32-vm/mpy-cross), walked from the firmware tree (subfolders included, as
packages), never the host board's folder (firmware/host/), the build manifest
(manifest.py), the tests, or main.py (the entry script stays in the factory image: it
is what picks the slot, like a bootloader, so an update cannot break it).

`--base REF` (a git tag or commit of the FACTORY firmware the fleet was flashed with):
a delta. A slot's modules overlay the frozen factory firmware, not the previous slot
(firmware/tgd/ota/overlay.py), so the bundle holds the modules whose .mpy differs
from the factory's, always against the factory image, never against the last release.
A slot's modules cost the heap their bytecode (and, for a module the app imports only
later, its import), so a release whose modules, loaded on the ESP32-faithful VM as
main.py loads them, hold more than SLOT_HEAP_BUDGET bytes is refused
(docs/benchmarks.md "A slot's heap"): the whole tree never fits a 48 KB handset.

`--route app --image FILE` (ESP32 handsets only, docs/technician.md "An app-route
release"): the bundle is the ESP32 app image `tgd-flash build-image` built (its
build folder's micropython.bin, the firmware frozen in it), written whole into the
handset's next OTA app partition (firmware/boards/esp32.py ota_app_write); checked to be
an app image (release_file.check_app_image) that a handset and the server take.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import tarfile
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

# The most heap a release's modules may hold on a 48 KB handset (docs/benchmarks.md
# "A slot's heap"): the alarm paths' highest peak is 38 896 of 49 152 bytes, which
# leaves 10 256; 2 KB of that stay for fragmentation. Measured per release on the VM
# (slot_heap; bench/slot_heap.py): 0.69-1.04 of a module's .mpy size (tgd/alarm.mpy,
# 9 212 bytes: 7 360), up to 2.14 for one the app imports only later (tgd/crypto/
# sha512.mpy, 3 020: 6 448, its tables); the whole tree (80 KB of .mpy) holds 67 KB,
# and at 48 KB does not even boot (MemoryError in the overlay).
SLOT_HEAP_BUDGET = 8192
_SLOT_HEAP = """
import gc, sys
sys.path.insert(0, '.frozen')
import asyncio, tgd.log
from tgd.ota import slot, overlay
gc.collect()
if {slot!r}:
    overlay.load({slot!r})
import tgd.app
gc.collect()
print('HEAP', gc.mem_alloc())
"""
# In a delta release: a line naming the factory firmware it was made against (signed
# with the bundle; the handset stores it in the slot and never reads it).
BASE_NOTE = "release-base.txt"
# Imported by main.py before the slot is chosen, or the overlay itself: a slot's copy
# would not be what boots (docs/firmware.md "Updates over the air").
NOT_OVERLAID = {"tgd/ota/slot.mpy", "tgd/ota/overlay.mpy"}


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
    p.add_argument("--base", metavar="REF",
                   help="git tag or commit of the factory firmware the fleet was flashed with: "
                        "the release carries only the modules changed since (always the "
                        "factory's, never the last release's)")
    p.add_argument("--route", choices=release_file.ROUTES, default=release_file.ROUTE_MPY,
                   help="the bundle's form: mpy (default), the handset modules as .mpy, for "
                        "every board; app, an ESP32 app image (--image), for ESP32 handsets only")
    p.add_argument("--image", type=Path,
                   help="with --route app: the app image build-image built (micropython.bin "
                        "in its build folder)")
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


def compile_module(mpy_cross: Path, rel: str, path: Path) -> bytes:
    """The .mpy of the source `path`, module `rel` (tgd/device) in the firmware tree."""
    with tempfile.TemporaryDirectory(prefix="tgd-release-") as tmp:
        out = Path(tmp) / "m.mpy"
        # -s: a traceback names the module, not this PC's path
        cmd = [str(mpy_cross), "-o", str(out), "-s", f"{rel}.py", str(path)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ReleaseRefused(f"mpy-cross failed on {rel}.py: {why[0]}")
        return out.read_bytes()


def compile_bundle(src: Path, mpy_cross: Path) -> list[tuple[str, bytes]]:
    sources = bundle_sources(src)
    if not sources:
        raise UsageError(f"--firmware {src}: no handset modules (*.py) there; give the firmware folder")
    if not mpy_cross.is_file():
        raise UsageError(f"--mpy-cross {mpy_cross}: not found; `make esp32-vm` builds it")
    return [(f"{rel}.mpy", compile_module(mpy_cross, rel, path)) for rel, path in sources]


def mpy_bytes(files: list[tuple[str, bytes]]) -> int:
    return sum(len(data) for path, data in files if path.endswith(".mpy"))


def slot_heap(files: list[tuple[str, bytes]], vm: Path, heap: str = "1m") -> int:
    """Live heap on the ESP32-faithful VM after main.py's boot with `files` in the slot:
    the slot's tgd modules loaded over the frozen firmware (tgd/ota/overlay.py), then the
    app imported. ReleaseRefused with the VM's last line if that fails."""
    if not vm.is_file():
        raise UsageError(f"{vm}: not found; `make esp32-vm` builds the VM that measures a "
                         "release's heap")
    with tempfile.TemporaryDirectory(prefix="tgd-release-slot-") as tmp:
        slot = Path(tmp) / "slot"
        for path, data in files:
            if path.endswith(".mpy"):
                (slot / path).parent.mkdir(parents=True, exist_ok=True)
                (slot / path).write_bytes(data)
        script = _SLOT_HEAP.format(slot=str(slot) if files else "")
        proc = subprocess.run([str(vm), "-X", f"heapsize={heap}", "-c", script], cwd=tmp,
                              capture_output=True, text=True, timeout=120)
    last = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
    if proc.returncode != 0 or not last[0].startswith("HEAP "):
        raise ReleaseRefused(f"the release's modules do not load over the firmware on the VM "
                             f"({vm}): {last[0]}")
    return int(last[0].split()[1])


def slot_heap_cost(files: list[tuple[str, bytes]], mpy_cross: Path) -> int:
    """What `files` in a slot cost a handset's heap (the VM next to `mpy_cross`)."""
    vm = mpy_cross.parent / "micropython"
    return slot_heap(files, vm) - slot_heap([], vm)


# -- delta over the factory firmware ----------------------------------------------------------

def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True)


def base_tree(src: Path, ref: str, dest: Path) -> tuple[str, Path]:
    """Write the firmware folder `src` as it is at git `ref` under `dest`; -> (the
    commit, that folder's copy)."""
    if ref.startswith("-") or not ref.strip():
        raise UsageError(f"--base {ref!r}: give a git tag or commit, e.g. --base tgd-factory-1.0.0")
    top = _git(src, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise UsageError(f"--base {ref}: {src} is not in a git checkout; make the release from "
                         "the repository's checkout, where the factory tag is")
    top_dir = Path(top.stdout.decode().strip())
    found = _git(top_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if found.returncode != 0:
        raise UsageError(f"--base {ref}: no such tag or commit in {top_dir}; give the tag of the "
                         "factory firmware the fleet was flashed with (`git tag -l`)")
    commit = found.stdout.decode().strip()
    inside = src.resolve().relative_to(top_dir.resolve()).as_posix()
    archive = _git(top_dir, "archive", "--format=tar", commit, "--", inside)
    if archive.returncode != 0:
        raise UsageError(f"--base {ref}: {inside}/ is not in commit {commit[:12]}; give the tag "
                         "of the factory firmware")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return commit, dest / inside


def delta_files(base: list[tuple[str, bytes]], new: list[tuple[str, bytes]],
                base_name: str = "the factory firmware") -> list[tuple[str, bytes]]:
    """The modules of `new` whose .mpy differs from `base`'s (the factory firmware's),
    new ones included, sorted; a ReleaseRefused, one line, for what an overlay of the
    frozen firmware cannot express (tgd/ota/overlay.py)."""
    old = dict(base)
    removed = sorted(set(old) - {path for path, _ in new})
    if removed:
        raise ReleaseRefused(
            f"{removed[0][:-4]}.py was removed since {base_name}: an update overlays the factory "
            "firmware and cannot remove a module; keep the module, or flash the handsets over USB")
    changed = sorted((path, data) for path, data in new if old.get(path) != data)
    if not changed:
        raise ReleaseRefused(f"nothing to release: the firmware compiles to the same .mpy as "
                             f"{base_name}; change it (and FW_VERSION) first")
    for path, _ in changed:
        why = None
        if not path.startswith("tgd/"):
            why = "the update route overlays tgd/ only (the board exists before the slot is chosen)"
        elif path.endswith("/__init__.mpy"):
            why = "a package's __init__ is not overlaid"
        elif path in NOT_OVERLAID:
            why = "main.py runs it before the slot is loaded"
        elif path.count("/") > 1 and path.rsplit("/", 1)[0] + "/__init__.mpy" not in old:
            why = "its package is new, and the factory firmware has no such package"
        if why:
            raise ReleaseRefused(f"{path[:-4]}.py changed since {base_name} but an update cannot "
                                 f"carry it: {why}; flash the handsets over USB")
    return changed


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
    if args.route == release_file.ROUTE_APP:
        if args.base is not None:
            raise UsageError(f"--base {args.base}: an app image replaces the whole firmware, it is "
                             "no delta; leave out --base with --route app")
        if args.image is None:
            raise UsageError("--image FILE is required with --route app: the micropython.bin "
                             "of `tgd-flash build-image`'s build folder")
    elif args.image is not None:
        raise UsageError(f"--image {args.image}: an image is released with --route app only "
                         "(ESP32 handsets); add --route app, or leave out --image")
    seed = read_seed(args.key)
    src = args.firmware or firmware_dir()
    if not src.is_dir():
        raise UsageError(f"--firmware {src}: no such folder; give the firmware sources")
    declared = declared_version(src)
    if declared != args.version:
        raise UsageError(f"--version {args.version}: the firmware in {src} says FW_VERSION = "
                         f"{declared!r}; set FW_VERSION to {args.version!r} there first (a handset "
                         "reports FW_VERSION, and the roll-out waits for it)")
    if args.route == release_file.ROUTE_APP:
        return release_app(args, seed, out)
    files = compile_bundle(src, args.mpy_cross)
    if args.base is not None:
        files, note = delta_over_base(src, args.base, args.version, files, args.mpy_cross)
    else:
        note = "the whole firmware tree (no --base)"
    cost = slot_heap_cost(files, args.mpy_cross)
    if cost > SLOT_HEAP_BUDGET:
        what = (f"the modules changed since --base {args.base}" if args.base is not None
                else "the whole firmware tree")
        fix = ("flash the handsets over USB" if args.base is not None else
               "use --base REF (the tag the fleet was flashed with) to release only the "
               "modules that changed")
        raise ReleaseRefused(
            f"{what} ({mpy_bytes(files)} bytes of .mpy) would hold {cost} bytes of a handset's "
            f"heap from its boot, more than the {SLOT_HEAP_BUDGET} its alarm can spare at 48 KB; "
            f"{fix}")
    data = release_file.build_release(seed, args.version, files, args.min_version)
    args.out.write_bytes(data)
    release = release_file.check_release(data, [release_sign.public_key(seed)])
    modules = [path for path, _ in files if path.endswith(".mpy")]
    print(f"release {args.version}: {len(modules)} modules ({', '.join(modules)}), "
          f"{mpy_bytes(files)} bytes of .mpy, {cost} bytes of heap, {note}; bundle {len(release.bundle)} bytes, "
          f"sha256 {release.manifest['sha256'][:16]}..., key {release.manifest['key']} -> {args.out}",
          file=out)
    return 0


def release_app(args: argparse.Namespace, seed: bytes, out: TextIO) -> int:
    """`--route app`: the image as the bundle, checked, signed."""
    try:
        image = args.image.read_bytes()
    except OSError as exc:
        raise UsageError(f"--image {args.image}: cannot read it ({exc.strerror}); give the "
                         "micropython.bin that `tgd-flash build-image` built") from exc
    try:
        release_file.check_app_kind(image)
    except release_file.ReleaseError as exc:
        raise UsageError(f"--image {args.image}: {exc}") from None
    try:
        release_file.check_bundle_size(image)
    except release_file.ReleaseError as exc:
        raise ReleaseRefused(f"--image {args.image}: {exc}") from None
    data = release_file.build_app_release(seed, args.version, image, args.min_version)
    if len(data) > release_file.MAX_RELEASE_BYTES:
        raise ReleaseRefused(f"--image {args.image}: the release would be {len(data)} bytes, more "
                             f"than the {release_file.MAX_RELEASE_BYTES} the server takes; make the "
                             "image smaller (fewer frozen modules or MicroPython features), or "
                             "flash the handsets over USB")
    args.out.write_bytes(data)
    release = release_file.check_release(data, [release_sign.public_key(seed)])
    print(f"release {args.version}: route app, the ESP32 app image {args.image.name} "
          f"({len(image)} bytes), for ESP32 handsets only; sha256 "
          f"{release.manifest['sha256'][:16]}..., key {release.manifest['key']} -> {args.out}",
          file=out)
    return 0


def delta_over_base(src: Path, ref: str, version: str, files: list[tuple[str, bytes]],
                    mpy_cross: Path) -> tuple[list[tuple[str, bytes]], str]:
    """`--base`: (the changed modules and the base note, what the release is over)."""
    with tempfile.TemporaryDirectory(prefix="tgd-release-base-") as tmp:
        commit, base_src = base_tree(src, ref, Path(tmp))
        base_version = declared_version(base_src)
        changed = delta_files(compile_bundle(base_src, mpy_cross), files, f"--base {ref}")
    if base_version and release_file.version_tuple(version) <= release_file.version_tuple(base_version):
        raise ReleaseRefused(f"--version {version}: the factory firmware at --base {ref} is "
                             f"already {base_version}; a handset takes only a newer version: "
                             "raise FW_VERSION")
    note = f"delta over the factory firmware {ref} (commit {commit[:12]}, FW_VERSION {base_version})"
    return changed + [(BASE_NOTE, f"base {ref} {commit} {base_version}\n".encode())], note


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
    if release.route == release_file.ROUTE_APP:
        what = "an ESP32 app image, for ESP32 handsets only"
    else:
        what = f"{len(release.files)} files, {base_of(release.files)}"
    print(f"{args.file}: OK, version {m['version']} (min {m['min']}), route {release.route}: "
          f"{what}, {m['size']} bytes, key {m['key']}", file=out)
    return 0


def base_of(files: list[tuple[str, bytes]]) -> str:
    """What a release says it was made against (its signed BASE_NOTE), for a person."""
    note = dict(files).get(BASE_NOTE)
    if note is None:
        return "no base: the whole firmware tree"
    words = note.decode(errors="replace").split()
    if len(words) != 4 or words[0] != "base":
        return f"base note unreadable: {note[:80]!r}"
    return f"delta over the factory firmware {words[1]} (commit {words[2][:12]}, FW_VERSION {words[3]})"


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
