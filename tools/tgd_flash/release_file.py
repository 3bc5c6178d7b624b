"""The release file `tgd-<version>.tgdrel` (OTA-CONTRACT.md), pure: build and check.

    line 1: manifest, canonical JSON (sorted keys, separators "," ":"), UTF-8
    line 2: signature, 128 hex chars: Ed25519 over the exact bytes of line 1
    rest:   the bundle, in the manifest's route's form:
            "mpy": b"TGDB1\\n" then for each file b"<relative path> <size>\\n" + bytes
            "app": an ESP32 app image as ESP-IDF builds it (the `micropython.bin` of
                   `tgd-flash build-image`'s build folder), written as it is into the
                   handset's next OTA app partition (firmware/boards/esp32.py)

Both the release tool (tgd-flash release-verify) and the server (upload) check a file
with `check_release`, so they refuse the same things for the same reasons.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from . import release_sign

BUNDLE_MAGIC = b"TGDB1\n"
FORMAT_VERSION = 1
ROUTE_MPY = "mpy"
ROUTE_APP = "app"
ROUTES = (ROUTE_MPY, ROUTE_APP)
# The most bytes of a bundle a handset takes (firmware/tgd/ota/offer.py check_offer)
MAX_BUNDLE_BYTES = 1_048_576
# The most bytes of a whole release the server takes (its upload, tgd_server/ota.py)
MAX_RELEASE_BYTES = 1_000_000
# An ESP32 app image (ESP-IDF "App Image Format"): byte 0, the image magic; at byte 32
# (after the 24-byte image header and the first segment's 8-byte header), the
# esp_app_desc_t's magic word, little-endian. A combined image (bootloader, partition
# table, app: what is flashed at 0x1000) starts with the bootloader's image, and holds
# the partition table at 0x8000 - 0x1000, magic 0xAA 0x50.
ESP_IMAGE_MAGIC = 0xE9
ESP_APP_DESC_MAGIC = (0xABCD5432).to_bytes(4, "little")
ESP_APP_DESC_AT = 32
ESP_COMBINED_TABLE_AT = 0x7000
ESP_TABLE_MAGIC = b"\xaa\x50"
VERSION_RE = re.compile(r"^\d{1,4}(\.\d{1,4}){1,3}$")
MAX_MANIFEST = 4096
MAX_BUNDLE_FILES = 500


class ReleaseError(ValueError):
    """A release that must be refused; the message says why (shown to the technician)."""


@dataclass(frozen=True)
class Release:
    manifest: dict
    manifest_line: bytes  # line 1, exactly as signed
    signature: bytes
    bundle: bytes
    files: list[tuple[str, bytes]]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def route(self) -> str:
        return self.manifest["route"]


def canonical(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def check_path(path: str) -> None:
    if (not path or path.startswith("/") or "\\" in path or ".." in path.split("/")
            or any(c.isspace() for c in path) or "" in path.split("/")):
        raise ReleaseError(f"bundle path {path!r} is not a plain relative path")


def pack_bundle(files: list[tuple[str, bytes]]) -> bytes:
    out = bytearray(BUNDLE_MAGIC)
    for path, data in files:
        check_path(path)
        out += f"{path} {len(data)}\n".encode() + data
    return bytes(out)


def unpack_bundle(bundle: bytes) -> list[tuple[str, bytes]]:
    if not bundle.startswith(BUNDLE_MAGIC):
        raise ReleaseError("the bundle does not start with TGDB1: not a TGD bundle")
    files, pos, seen = [], len(BUNDLE_MAGIC), set()
    while pos < len(bundle):
        end = bundle.find(b"\n", pos, pos + 300)
        if end < 0:
            raise ReleaseError(f"bundle entry header at byte {pos} is malformed")
        try:
            path, size_text = bundle[pos:end].decode().rsplit(" ", 1)
            size = int(size_text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ReleaseError(f"bundle entry header at byte {pos} is malformed") from exc
        check_path(path)
        if size < 0 or end + 1 + size > len(bundle):
            raise ReleaseError(f"bundle entry {path} says {size} bytes, more than the bundle holds")
        if path in seen:
            raise ReleaseError(f"bundle holds {path} twice")
        seen.add(path)
        files.append((path, bundle[end + 1:end + 1 + size]))
        pos = end + 1 + size
        if len(files) > MAX_BUNDLE_FILES:
            raise ReleaseError(f"bundle holds more than {MAX_BUNDLE_FILES} files")
    if not files:
        raise ReleaseError("the bundle holds no file")
    return files


def check_app_image(image: bytes) -> None:
    """ReleaseError unless `image` looks like an ESP32 app image a handset can take."""
    check_app_kind(image)
    check_bundle_size(image)


def check_app_kind(image: bytes) -> None:
    """ReleaseError unless `image` starts as an ESP32 app image does (not its size)."""
    if not image or image[0] != ESP_IMAGE_MAGIC:
        raise ReleaseError("not an ESP32 app image (its first byte is not 0xE9, the ESP image "
                           "magic): give micropython.bin from `tgd-flash build-image`'s build folder")
    if image[ESP_APP_DESC_AT:ESP_APP_DESC_AT + 4] != ESP_APP_DESC_MAGIC:
        if image[ESP_COMBINED_TABLE_AT:ESP_COMBINED_TABLE_AT + 2] == ESP_TABLE_MAGIC:
            raise ReleaseError("a combined image (bootloader, partition table and app, flashed "
                               "at 0x1000), not an app image: give micropython.bin from the same "
                               "build folder")
        raise ReleaseError("an ESP image without an application description (no 0xABCD5432 at "
                           "byte 32), not an app image: give micropython.bin from "
                           "`tgd-flash build-image`'s build folder")


def check_bundle_size(bundle: bytes) -> None:
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise ReleaseError(f"the bundle is {len(bundle)} bytes, more than the {MAX_BUNDLE_BYTES} "
                           "a handset takes: make it smaller, or flash the handsets over USB")


def make_manifest(version: str, bundle: bytes, pub: bytes, min_version: str,
                  route: str = ROUTE_MPY) -> dict:
    return {"v": FORMAT_VERSION, "version": version, "route": route, "size": len(bundle),
            "sha256": hashlib.sha256(bundle).hexdigest(), "key": release_sign.key_id(pub),
            "min": min_version}


def build_release(seed: bytes, version: str, files: list[tuple[str, bytes]],
                  min_version: str = "0.0.0") -> bytes:
    """The .tgdrel bytes of an "mpy" release: manifest, its signature, the bundle."""
    return _signed(seed, version, pack_bundle(files), min_version, ROUTE_MPY)


def build_app_release(seed: bytes, version: str, image: bytes, min_version: str = "0.0.0") -> bytes:
    """The .tgdrel bytes of an "app" release: the bundle is the ESP32 app image itself."""
    check_app_image(image)
    return _signed(seed, version, image, min_version, ROUTE_APP)


def _signed(seed: bytes, version: str, bundle: bytes, min_version: str, route: str) -> bytes:
    for name, value in (("version", version), ("min", min_version)):
        if not VERSION_RE.match(value):
            raise ReleaseError(f"{name} {value!r} is not a version like 1.1.0")
    pub = release_sign.public_key(seed)
    line = canonical(make_manifest(version, bundle, pub, min_version, route))
    sig = release_sign.sign(seed, line)
    return line + b"\n" + sig.hex().encode() + b"\n" + bundle


def split_release(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(manifest line, signature bytes, bundle) or ReleaseError."""
    first = data.find(b"\n", 0, MAX_MANIFEST)
    if first < 0:
        raise ReleaseError("no manifest line: not a .tgdrel release file")
    second = data.find(b"\n", first + 1, first + 1 + 130)
    if second != first + 129:
        raise ReleaseError("line 2 is not a 128-hex-digit signature")
    try:
        sig = bytes.fromhex(data[first + 1:second].decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReleaseError("line 2 is not a 128-hex-digit signature") from exc
    return data[:first], sig, data[second + 1:]


def parse_manifest(line: bytes) -> dict:
    try:
        manifest = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReleaseError("the manifest line is not JSON") from exc
    if not isinstance(manifest, dict):
        raise ReleaseError("the manifest is not a JSON object")
    if manifest.get("v") != FORMAT_VERSION:
        raise ReleaseError(f"manifest format v={manifest.get('v')!r}, this reads v={FORMAT_VERSION}")
    for key in ("version", "min"):
        if not isinstance(manifest.get(key), str) or not VERSION_RE.match(manifest[key]):
            raise ReleaseError(f"manifest {key} {manifest.get(key)!r} is not a version like 1.1.0")
    if manifest.get("route") not in ROUTES:
        raise ReleaseError(f"manifest route {manifest.get('route')!r}: only 'mpy' and 'app' "
                           "are served")
    size = manifest.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ReleaseError("manifest size is not a byte count")
    sha = manifest.get("sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ReleaseError("manifest sha256 is not 64 lowercase hex digits")
    if not isinstance(manifest.get("key"), str):
        raise ReleaseError("manifest has no key id")
    return manifest


def check_release(data: bytes, pubs: list[bytes]) -> Release:
    """The release in `data`, checked against the trusted public keys, or ReleaseError.

    Order: the signature first (nothing unsigned is believed), then size and SHA-256 of
    the bundle, then its structure (route "mpy": the TGDB1 files; "app": an ESP32 app
    image, `files` empty)."""
    line, sig, bundle = split_release(data)
    if not pubs:
        raise ReleaseError("no release public key is configured: nothing can be verified")
    if not any(release_sign.verify(pub, line, sig) for pub in pubs):
        raise ReleaseError("the signature does not verify with any configured release key "
                           "(tampered, or signed with another key)")
    manifest = parse_manifest(line)
    if len(bundle) != manifest["size"]:
        raise ReleaseError(f"bundle is {len(bundle)} bytes, the manifest says {manifest['size']}")
    if hashlib.sha256(bundle).hexdigest() != manifest["sha256"]:
        raise ReleaseError("bundle SHA-256 differs from the manifest's")
    if manifest["route"] == ROUTE_APP:
        check_app_image(bundle)
        files = []
    else:
        files = unpack_bundle(bundle)
    return Release(manifest, line, sig, bundle, files)


def parse_pub_hex(text: str) -> bytes:
    text = text.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise ValueError("a release public key is 64 hex digits")
    return bytes.fromhex(text)
