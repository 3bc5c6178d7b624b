# Ed25519 signature verification (RFC 8032 section 5.1.7) in pure Python, for a handset
# that checks a release's signature with the release public key (config `release_pub`)
# before it writes anything where it could run. Runs on MicroPython (big ints) and on
# CPython; the release tooling (tools/tgd_flash/release_sign.py) signs with this same
# arithmetic, so there is one copy of the curve code.
#
# Points are kept in extended coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, x*y = T/Z
# (RFC 8032 section 5.1.4). Readability first: a verify is two scalar multiplications
# done together (about 255 doublings and 190 additions), which is well under a second
# on the ESP32-faithful VM (docs/benchmarks.md).
from sha512 import sha512

# The field prime 2**255 - 19 and the group order 2**252 + 27742317777372353535851937790883648493.
P = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED
L = 0x1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED
# d = -121665 / 121666 mod P, the curve constant.
D = 0x52036CEE2B6FFE738CC740797779E89800700A4D4141D8AB75EB4DCA135978A3
# sqrt(-1) mod P = 2 ** ((P - 1) / 4) mod P.
SQRT_M1 = 0x2B8324804FC1DF0B2B4D00993DFBD7A72F431806AD2FE478C4EE1B274A0EA0B0
# The base point B: y = 4/5, x the even root.
_BX = 0x216936D3CD6E53FEC0A4E231FDD6DC5C692CC7609525A7B2C9562D608F25D51A
_BY = 0x6666666666666666666666666666666666666666666666666666666666666658
BASE = (_BX, _BY, 1, _BX * _BY % P)
IDENTITY = (0, 1, 1, 0)


def point_add(p, q):
    """p + q (the unified formula: it also doubles, p + p)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = b - a, dd - c, dd + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def point_neg(p):
    x, y, z, t = p
    return ((-x) % P, y, z, (-t) % P)


def point_equal(p, q):
    """Same point whatever the projective Z of each."""
    x1, y1, z1, _ = p
    x2, y2, z2, _ = q
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def scalar_mult(s, p):
    """s * p (0 <= s < 2**256), double-and-add from the top bit (MicroPython's int has no
    bit_length(), so the loop runs over all 256 bits)."""
    q = IDENTITY
    for i in range(255, -1, -1):
        q = point_add(q, q)
        if (s >> i) & 1:
            q = point_add(q, p)
    return q


def double_scalar_mult(s, p, t, q):
    """s * p + t * q for scalars below L (< 2**253), in one pass of doublings (Straus)."""
    pq = point_add(p, q)
    r = IDENTITY
    for i in range(252, -1, -1):
        r = point_add(r, r)
        bits = ((s >> i) & 1) | (((t >> i) & 1) << 1)
        if bits == 1:
            r = point_add(r, p)
        elif bits == 2:
            r = point_add(r, q)
        elif bits == 3:
            r = point_add(r, pq)
    return r


def point_compress(p):
    """The 32-byte encoding: y little-endian, the top bit holding x's parity."""
    x, y, z, _ = p
    zinv = pow(z, P - 2, P)
    x = x * zinv % P
    y = y * zinv % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def point_decompress(s):
    """The point a 32-byte encoding names, or None when it names none (RFC 8032 5.1.3)."""
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None  # not canonical
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    # x = sqrt(u / v): the candidate (u/v) ** ((P + 3) / 8), computed as RFC 8032 does
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    vxx = v * x * x % P
    if vxx != u:
        if vxx != (-u) % P:
            return None  # u/v is not a square: no point has this y
        x = x * SQRT_M1 % P
    if x == 0 and sign:
        return None  # x = 0 has no negative
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _scalar(h):
    return int.from_bytes(h, "little") % L


def verify(pub, msg, sig):
    """True when `sig` (64 bytes) is a valid Ed25519 signature of `msg` by public key `pub`
    (32 bytes). Any malformed input (lengths, point encodings, S >= L) is False, never raised."""
    try:
        pub = bytes(pub)
        sig = bytes(sig)
        msg = bytes(msg)
    except (TypeError, ValueError):
        return False
    if len(pub) != 32 or len(sig) != 64:
        return False
    a = point_decompress(pub)
    if a is None:
        return False
    r = point_decompress(sig[:32])
    if r is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False  # RFC 8032: a non-reduced S is refused (signature malleability)
    k = _scalar(sha512(sig[:32] + pub + msg))
    # [S]B == R + [k]A, checked as [S]B + [k](-A) == R
    return point_equal(double_scalar_mult(s, BASE, k, point_neg(a)), r)
