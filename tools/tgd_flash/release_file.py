"""The release file `tgd-<version>.tgdrel` (OTA-CONTRACT.md), pure: build and check.

    line 1: manifest, canonical JSON (sorted keys, separators "," ":"), UTF-8
    line 2: signature, 128 hex chars: Ed25519 over the exact bytes of line 1
    rest:   the bundle: b"TGDB1\\n" then for each file b"<relative path> <size>\\n" + bytes

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


def make_manifest(version: str, bundle: bytes, pub: bytes, min_version: str) -> dict:
    return {"v": FORMAT_VERSION, "version": version, "route": ROUTE_MPY, "size": len(bundle),
            "sha256": hashlib.sha256(bundle).hexdigest(), "key": release_sign.key_id(pub),
            "min": min_version}


def build_release(seed: bytes, version: str, files: list[tuple[str, bytes]],
                  min_version: str = "0.0.0") -> bytes:
    """The .tgdrel bytes: manifest, its signature, the bundle."""
    for name, value in (("version", version), ("min", min_version)):
        if not VERSION_RE.match(value):
            raise ReleaseError(f"{name} {value!r} is not a version like 1.1.0")
    bundle = pack_bundle(files)
    pub = release_sign.public_key(seed)
    line = canonical(make_manifest(version, bundle, pub, min_version))
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
    if manifest.get("route") != ROUTE_MPY:
        raise ReleaseError(f"manifest route {manifest.get('route')!r}: only 'mpy' is served")
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
    the bundle, then its structure."""
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
    files = unpack_bundle(bundle)
    return Release(manifest, line, sig, bundle, files)


def parse_pub_hex(text: str) -> bytes:
    text = text.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise ValueError("a release public key is 64 hex digits")
    return bytes.fromhex(text)
