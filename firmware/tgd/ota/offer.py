# Updates over the air, the pure part (docs/firmware.md "Updates over the air"):
# the offer's checks (signature, min, newer), version order, the bundle's entry
# headers. No I/O here: tgd/ota/run.py downloads and
# installs, tgd/ota/slot.py keeps the slots and decides at boot.
import json
from binascii import hexlify, unhexlify

BUNDLE_MAGIC = b"TGDB1\n"
# ota.res codes (OTA-CONTRACT.md "Handset report"); "refused": a release signed by our
# key that this firmware may not take (min above us, or not newer)
RESULTS = ("ok", "rolled_back", "bad_sig", "bad_hash", "selftest_failed", "deferred",
           "downloading", "none", "refused")
_PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/"


class OtaError(Exception):
    """args[0]: the ota.res code; args[1]: why, for the log."""


def parse_version(s):
    """"1.10.2" -> (1, 10, 2); None for anything else (at most 4 numeric parts)."""
    if not isinstance(s, str) or not 0 < len(s) <= 24:
        return None
    parts = s.split(".")
    if len(parts) > 4:
        return None
    out = []
    for p in parts:
        if not p or not p.isdigit() or len(p) > 6:
            return None
        out.append(int(p))
    return tuple(out)


def newer(a, b):
    """True when version a is strictly after b (unparsable: False)."""
    va, vb = parse_version(a), parse_version(b)
    if va is None or vb is None:
        return False
    n = max(len(va), len(vb))
    return va + (0,) * (n - len(va)) > vb + (0,) * (n - len(vb))


def _hex(v, n):
    if not isinstance(v, str) or len(v) != n:
        return False
    for c in v:
        if c not in "0123456789abcdef":
            return False
    return True


def key_id(pub):
    """The manifest's "key": first 16 hex of sha256(public key bytes)."""
    import hashlib
    return hexlify(hashlib.sha256(pub).digest()).decode()[:16]


def check_offer(update, running, pub_hex, verify, routes=("mpy",)):
    """The heartbeat answer's `update` -> (manifest dict, url). Nothing is trusted
    before the signature: it is checked first, over the manifest's exact bytes.

    verify(pub32, msg, sig64) -> bool is tgd.crypto.ed25519.verify; routes: the bundle forms this
    board installs ("mpy": a .mpy set in a flash slot; "app": an esp32.Partition image).
    Raises OtaError:
    bad_sig (no key configured, malformed, another key, a signature that fails),
    refused (min above the running firmware, or a version not newer).
    """
    if not isinstance(update, dict):
        raise OtaError("bad_sig", "offer_not_an_object")
    text, sig, url = update.get("manifest"), update.get("sig"), update.get("url")
    if not _hex(pub_hex, 64):
        raise OtaError("bad_sig", "no_release_pub")
    if not isinstance(text, str) or not 0 < len(text) <= 1024 or not _hex(sig, 128):
        raise OtaError("bad_sig", "malformed_offer")
    if not isinstance(url, str) or not 0 < len(url) <= 200 or '"' in url or " " in url:
        raise OtaError("bad_sig", "bad_url")
    pub = unhexlify(pub_hex)
    if not verify(pub, text.encode(), unhexlify(sig)):
        raise OtaError("bad_sig", "signature")
    try:
        m = json.loads(text)
    except ValueError:
        raise OtaError("bad_sig", "manifest_not_json")
    if not isinstance(m, dict) or m.get("v") != 1:
        raise OtaError("bad_sig", "manifest_version")
    if m.get("key") != key_id(pub):
        raise OtaError("bad_sig", "key_id")
    size = m.get("size")
    if (m.get("route") not in routes or not isinstance(size, int) or not 0 < size <= 1048576
            or not _hex(m.get("sha256"), 64) or parse_version(m.get("version")) is None
            or parse_version(m.get("min")) is None):
        raise OtaError("bad_sig", "manifest_fields")
    if newer(m["min"], running):
        raise OtaError("refused", "min_" + m["min"])
    if not newer(m["version"], running):
        raise OtaError("refused", "not_newer")
    return m, url


def bundle_url(server_url, url):
    """An offer's url ("/api/v1/fw/1.1.0/bundle") on the server the handset talks to."""
    if url.startswith("http://") or url.startswith("https://"):
        return url
    i = server_url.find("/", server_url.find("//") + 2)
    base = server_url if i < 0 else server_url[:i]
    return base + url


def entry(line, remaining):
    """A bundle entry header b"<path> <size>\\n" -> (path, size); `remaining`: bytes
    left in the bundle after this line. Raises OtaError("bad_hash", why)."""
    if not line.endswith(b"\n") or len(line) > 200:
        raise OtaError("bad_hash", "entry_header")
    try:
        text = line[:-1].decode()
    except UnicodeError:
        raise OtaError("bad_hash", "entry_header")
    i = text.rfind(" ")
    path, size = text[:i], text[i + 1:]
    if i <= 0 or not size.isdigit() or int(size) > remaining:
        raise OtaError("bad_hash", "entry_size")
    if path.startswith("/") or ".." in path or "//" in path:
        raise OtaError("bad_hash", "entry_path")
    for c in path:
        if c not in _PATH_CHARS:
            raise OtaError("bad_hash", "entry_path")
    return path, int(size)

