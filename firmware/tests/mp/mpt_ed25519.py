# heapsize: 48k
# SHA-512 and Ed25519 verify on the VM: RFC 8032 section 7.1 vectors, and the refusals a
# handset relies on (tampered message, wrong key, malformed signature or key).
# At the handset's heap (48 KB), the test module and the vectors compiled into it.
from binascii import unhexlify

import ed25519
from rfc8032_vectors import VECTORS
from sha512 import SHA512, sha512

SHA512_ABC = ("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
              "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
SHA512_EMPTY = ("cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
                "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")
# FIPS 180-2 C.2: the 896-bit (112-byte) message, two blocks after padding
SHA512_TWO_BLOCKS = ("8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
                     "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909")


def _hex(b):
    return "".join("%02x" % x for x in b)


def test_sha512_known_digests():
    assert _hex(sha512(b"abc")) == SHA512_ABC
    assert _hex(sha512(b"")) == SHA512_EMPTY
    msg = (b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
           b"jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")
    assert _hex(sha512(msg)) == SHA512_TWO_BLOCKS


def test_sha512_incremental_equals_one_shot():
    h = SHA512()
    for chunk in (b"a", b"bc" * 70, b"", b"x" * 129):
        h.update(chunk)
    assert h.digest() == sha512(b"a" + b"bc" * 70 + b"x" * 129)


def test_rfc8032_vectors_verify():
    for name, _sk, pk, msg, sig in VECTORS:
        assert ed25519.verify(unhexlify(pk), unhexlify(msg), unhexlify(sig)), name


def test_rfc8032_test_sha_abc_message_is_sha512_of_abc():
    name, _sk, _pk, msg, _sig = VECTORS[4]
    assert name == "TEST SHA(abc)" and msg == SHA512_ABC


def test_tampered_message_is_refused():
    _name, _sk, pk, msg, sig = VECTORS[2]
    assert not ed25519.verify(unhexlify(pk), b"\xaf\x83", unhexlify(sig))
    assert not ed25519.verify(unhexlify(pk), unhexlify(msg) + b"\x00", unhexlify(sig))


def test_wrong_key_is_refused():
    _n1, _s1, pk1, _m1, _g1 = VECTORS[0]
    _n2, _s2, _pk2, msg2, sig2 = VECTORS[1]
    assert not ed25519.verify(unhexlify(pk1), unhexlify(msg2), unhexlify(sig2))


def test_s_not_below_the_group_order_is_refused():
    _name, _sk, pk, msg, sig = VECTORS[0]
    sig = unhexlify(sig)
    s = int.from_bytes(sig[32:], "little")
    # S + L is the same scalar mod L: a malleable copy, which RFC 8032 refuses
    forged = sig[:32] + (s + ed25519.L).to_bytes(32, "little")
    assert not ed25519.verify(unhexlify(pk), unhexlify(msg), forged)
    assert not ed25519.verify(unhexlify(pk), unhexlify(msg), sig[:32] + b"\xff" * 32)


def test_bad_point_encodings_are_refused():
    _name, _sk, pk, msg, sig = VECTORS[0]
    pk, msg, sig = unhexlify(pk), unhexlify(msg), unhexlify(sig)
    not_canonical = (ed25519.P + 1).to_bytes(32, "little")  # y >= p
    assert ed25519.point_decompress(not_canonical) is None
    no_point = (2).to_bytes(32, "little")  # y = 2: (y^2 - 1)/(d y^2 + 1) is not a square
    assert ed25519.point_decompress(no_point) is None
    assert not ed25519.verify(no_point, msg, sig)  # as the public key
    assert not ed25519.verify(pk, msg, no_point + sig[32:])  # as R
    negative_zero = (1 | (1 << 255)).to_bytes(32, "little")  # y = 1 gives x = 0, sign bit set
    assert ed25519.point_decompress(negative_zero) is None


def test_wrong_lengths_and_types_are_false_not_exceptions():
    _name, _sk, pk, msg, sig = VECTORS[0]
    pk, msg, sig = unhexlify(pk), unhexlify(msg), unhexlify(sig)
    assert not ed25519.verify(pk[:31], msg, sig)
    assert not ed25519.verify(pk, msg, sig[:63])
    assert not ed25519.verify(pk, msg, sig + b"\x00")
    assert not ed25519.verify(None, msg, sig)
    assert not ed25519.verify(pk, msg, "not bytes")
