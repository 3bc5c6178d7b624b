# HMAC-SHA256 (RFC 2104) over hashlib.sha256: MicroPython has no hmac module.
from micropython import const
import hashlib
import binascii

_BLOCK = const(64)


def _xor_pad(key, byte):
    out = bytearray(_BLOCK)
    for i in range(_BLOCK):
        out[i] = (key[i] if i < len(key) else 0) ^ byte
    return out


def hmac_sha256(key, data):
    """Return the 32-byte HMAC-SHA256 of `data` (bytes) under `key` (bytes)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    inner = hashlib.sha256(_xor_pad(key, 0x36))
    inner.update(data)
    outer = hashlib.sha256(_xor_pad(key, 0x5C))
    outer.update(inner.digest())
    return outer.digest()


def hmac_sha256_hex(key, data):
    return binascii.hexlify(hmac_sha256(key, data)).decode()
