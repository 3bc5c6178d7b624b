# HMAC-SHA256 against the RFC 4231 test vectors.
from binascii import unhexlify

from tgd.hmac256 import hmac_sha256_hex

VECTORS = [
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (unhexlify("0102030405060708090a0b0c0d0e0f10111213141516171819"), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131,
     b"This is a test using a larger than block-size key and a larger than block-size data."
     b" The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]


def test_rfc4231_vectors():
    for key, data, expected in VECTORS:
        assert hmac_sha256_hex(key, data) == expected, (key, data)


def test_truncated_vector_prefix():
    # RFC 4231 case 5 is truncated to 128 bits.
    got = hmac_sha256_hex(b"\x0c" * 20, b"Test With Truncation")
    assert got[:32] == "a3b6167473100ee06e0c796c2955552b"


def test_different_key_different_mac():
    assert hmac_sha256_hex(b"a", b"x") != hmac_sha256_hex(b"b", b"x")
