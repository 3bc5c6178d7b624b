"""The release crypto on CPython: the firmware's SHA-512 and Ed25519 (the same files the VM
freezes, firmware/tests/mp/mpt_ed25519.py runs them there) and the tools' signing, which
reuses the firmware's curve arithmetic."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import pytest

from tgd_flash import release_sign

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("rfc8032_vectors",
                                               REPO / "firmware/tests/mp/rfc8032_vectors.py")
vectors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vectors)
VECTORS = vectors.VECTORS
ed = release_sign.curve()


def test_signing_uses_the_firmware_curve_module_not_a_copy():
    assert Path(ed.__file__).resolve() == (REPO / "firmware" / "ed25519.py").resolve()
    assert not list((REPO / "tools").rglob("ed25519.py"))


def test_curve_constants_are_what_rfc_8032_defines():
    p = 2**255 - 19
    assert ed.P == p and ed.L == 2**252 + 27742317777372353535851937790883648493
    assert ed.D == -121665 * pow(121666, p - 2, p) % p
    assert ed.SQRT_M1 == pow(2, (p - 1) // 4, p)
    x, y, z, t = ed.BASE
    assert y == 4 * pow(5, p - 2, p) % p and x % 2 == 0
    assert (-x * x + y * y - 1 - ed.D * x * x * y * y) % p == 0  # on the curve


@pytest.mark.parametrize("vector", VECTORS, ids=[v[0] for v in VECTORS])
def test_rfc8032_vectors_sign_and_verify(vector):
    sk, pk, msg, sig = (bytes.fromhex(h) for h in vector[1:])
    assert release_sign.public_key(sk) == pk
    assert release_sign.sign(sk, msg) == sig
    assert ed.verify(pk, msg, sig)


def test_pure_sha512_matches_hashlib_at_every_padding_edge():
    sha = release_sign._load("tgd_firmware_sha512_test", REPO / "firmware" / "sha512.py")
    for n in (0, 1, 55, 111, 112, 127, 128, 129, 239, 240, 256, 1000):
        data = os.urandom(n)
        assert sha.sha512(data) == hashlib.sha512(data).digest(), n


def test_refusals_tampered_message_wrong_key_malformed_signature():
    seed, other = os.urandom(32), os.urandom(32)
    pub = release_sign.public_key(seed)
    msg = b'{"version":"1.1.0"}'
    sig = release_sign.sign(seed, msg)
    assert ed.verify(pub, msg, sig)
    assert not ed.verify(pub, msg.replace(b"1.1.0", b"1.1.1"), sig)
    assert not ed.verify(release_sign.public_key(other), msg, sig)
    s = int.from_bytes(sig[32:], "little")
    assert not ed.verify(pub, msg, sig[:32] + (s + ed.L).to_bytes(32, "little"))  # S >= L
    assert not ed.verify(pub, msg, (2).to_bytes(32, "little") + sig[32:])  # R not a point
    assert not ed.verify((ed.P + 1).to_bytes(32, "little"), msg, sig)  # key not canonical
    assert not ed.verify(pub, msg, sig[:-1])


def test_key_id_is_the_first_16_hex_of_sha256_of_the_public_key():
    pub = bytes(range(32))
    assert release_sign.key_id(pub) == hashlib.sha256(pub).hexdigest()[:16]


def test_the_verify_benchmark_runs_and_prints_its_figures():
    import subprocess
    import sys

    from tgd_flash.micropython_vm import micropython

    if not micropython().esp32_vm:
        pytest.skip("make esp32-vm")
    out = subprocess.run([sys.executable, str(REPO / "bench" / "ota_verify_bench.py"), "--runs", "2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "heap 48k: ok=True" in out.stdout and "median_ms=" in out.stdout
    assert "heaps (KB) in which 3 verifies pass" in out.stdout
