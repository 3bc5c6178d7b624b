"""Ed25519 signing and key generation for releases (CPython, on the offline release PC).

The curve arithmetic is the firmware's own (firmware/ed25519.py, firmware/sha512.py),
loaded by path: the handset verifies with exactly the code that signed, and there is
one copy of the curve code. Only what a verifier never needs lives here: the secret
scalar from a seed (RFC 8032 section 5.1.5) and the signature itself (5.1.6).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

REPO_FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


def _find(name: str) -> Path:
    """firmware/<name>, or wherever the package layout put it (firmware/tgd/...)."""
    direct = REPO_FIRMWARE / name
    if direct.is_file():
        return direct
    found = sorted(p for p in REPO_FIRMWARE.rglob(name) if "tests" not in p.parts)
    if not found:
        raise FileNotFoundError(f"no {name} under {REPO_FIRMWARE}: the release tools need the "
                                "firmware sources of this checkout")
    return found[0]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def curve() -> ModuleType:
    """The firmware's ed25519 module (its `from sha512 import sha512` served by the firmware's
    sha512.py, registered only while it loads)."""
    sha = _load("tgd_firmware_sha512", _find("sha512.py"))
    saved = sys.modules.get("sha512")
    sys.modules["sha512"] = sha
    try:
        return _load("tgd_firmware_ed25519", _find("ed25519.py"))
    finally:
        if saved is None:
            sys.modules.pop("sha512", None)
        else:
            sys.modules["sha512"] = saved


def _secret(seed: bytes) -> tuple[int, bytes]:
    """(secret scalar a, prefix) from the 32-byte seed: SHA-512, then clamping."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 private key (seed) is 32 bytes")
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8  # clear the 3 low bits and bit 255
    a |= 1 << 254
    return a, h[32:]


def public_key(seed: bytes) -> bytes:
    ed = curve()
    a, _ = _secret(seed)
    return ed.point_compress(ed.scalar_mult(a, ed.BASE))


def sign(seed: bytes, msg: bytes) -> bytes:
    """The 64-byte Ed25519 signature of `msg` (RFC 8032 section 5.1.6)."""
    ed = curve()
    a, prefix = _secret(seed)
    pub = ed.point_compress(ed.scalar_mult(a, ed.BASE))
    r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), "little") % ed.L
    big_r = ed.point_compress(ed.scalar_mult(r, ed.BASE))
    k = int.from_bytes(hashlib.sha512(big_r + pub + msg).digest(), "little") % ed.L
    s = (r + k * a) % ed.L
    return big_r + s.to_bytes(32, "little")


def verify(pub: bytes, msg: bytes, sig: bytes) -> bool:
    return bool(curve().verify(pub, msg, sig))


def new_seed() -> bytes:
    return os.urandom(32)


def key_id(pub: bytes) -> str:
    """The manifest's `key`: the first 16 hex digits of SHA-256(public key)."""
    return hashlib.sha256(pub).hexdigest()[:16]
