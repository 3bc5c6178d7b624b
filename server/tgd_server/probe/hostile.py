"""Hostile device messages: what a stranger, a fuzzer or a broken handset sends.

`cases(device)` builds the list; every case must be refused with a 4xx (never
accepted, never a 5xx) and write nothing but the security log. `device` is a
registered probe handset (its id and key), so that signed garbage reaches the
checks behind the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field

PATH = "/api/v1/device/messages"
SQL_INJECTIONS = ("' OR '1'='1", "NC1'; DROP TABLE devices; --", "\" OR 1=1 --",
                  "1; SELECT pg_sleep(5)", "x') UNION SELECT key_hex FROM devices --")


@dataclass
class ProbeDevice:
    device_id: str
    key_hex: str
    seq: int = 0

    def sign(self, body: bytes) -> str:
        return hmac.new(bytes.fromhex(self.key_hex), body, hashlib.sha256).hexdigest()

    def message(self, type_: str = "heartbeat", **changes) -> dict:
        self.seq += 1
        now = int(time.time())
        message = {"v": 1, "dev": self.device_id, "seq": self.seq, "type": type_, "t": now,
                   "fix": {"m": "N"}, "cell": None, "bat": 3990, "csq": 20, "fw": "probe"}
        message.update(changes)
        return message


@dataclass
class Case:
    """One hostile request: an HTTP body with headers, or raw request bytes."""

    name: str
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    raw: bytes | None = None


def encode(message) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=True).encode()


def signed(device: ProbeDevice, name: str, body: bytes) -> Case:
    return Case(name, body, {"Content-Type": "application/json",
                             "X-TGD-Signature": device.sign(body)})


def unsigned(name: str, body: bytes, signature: str | None = "00" * 32,
             content_type: str = "application/json") -> Case:
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["X-TGD-Signature"] = signature
    return Case(name, body, headers)


def _raw(name: str, head: str, body: bytes) -> Case:
    return Case(name, raw=head.encode() + body)


def cases(device: ProbeDevice, host: str = "probe") -> list[Case]:
    """Every hostile case once (about 120 requests)."""
    out: list[Case] = []
    # A seq far above what the device sends (replays() uses 1): each case is judged on
    # what is wrong with it, not refused as a replay first.
    base = {**device.message(), "seq": 2**30}
    device.seq -= 1
    good = encode(base)

    # Signature: missing, wrong key, malformed, unknown device.
    out.append(unsigned("missing signature", good, signature=None))
    out.append(unsigned("wrong key", good, signature=hmac.new(
        secrets.token_bytes(32), good, hashlib.sha256).hexdigest()))
    for bad in ("", "zz" * 32, "0" * 63, "é" * 64, "00" * 32 + "\x00", "A" * 4096):
        out.append(unsigned(f"malformed signature {bad[:6]!r}", good,
                            signature=bad.encode("utf-8", "surrogateescape").decode("latin-1")))
    stranger = ProbeDevice("PROBE-UNKNOWN-" + secrets.token_hex(4), secrets.token_hex(32))
    out.append(signed(stranger, "unknown device", encode(stranger.message())))

    # Bytes: empty, huge, not JSON, not UTF-8, NUL, surrogates, deep nesting, NaN.
    out.append(signed(device, "empty body", b""))
    huge = b'{"v":1,"x":"' + b"A" * (1 << 20) + b'"}'
    out.append(_raw("1 MB body", f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\n"
                    "Content-Type: application/json\r\nConnection: close\r\n"
                    f"X-TGD-Signature: {device.sign(huge)}\r\n"
                    f"Content-Length: {len(huge)}\r\n\r\n", huge))
    out.append(signed(device, "2049 bytes", b'{"v":1,"x":"' + b"A" * 2036 + b'"}'))
    for name, body in (("not JSON", b"hello"), ("JSON array", b"[1,2,3]"),
                       ("JSON string", b'"x"'), ("latin-1", '{"dev":"é"}'.encode("latin-1")),
                       ("raw NUL", b'{"v":1,"dev":"NC\x00X"}'),
                       ("escaped NUL key", b'{"\\u0000":1}'),
                       ("lone surrogate key", b'{"\\ud800":1}'),
                       ("raw surrogate bytes", b'{"dev":"\xed\xa0\x80"}'),
                       ("deep nesting", b"[" * 1000 + b"]" * 1000),
                       ("deep objects", b'{"a":' * 300 + b"1" + b"}" * 300),
                       ("truncated JSON", good[: len(good) // 2])):
        out.append(signed(device, name, body))
        out.append(unsigned(name + " (unsigned)", body))
    for value in ("NaN", "Infinity", "-Infinity", "1e400"):
        text = good.replace(b'"m":"N"', b'"m":"G","lat":' + value.encode() + b',"lon":1')
        out.append(signed(device, f"lat {value}", text))

    # Values: wrong types, out of range, old and future times, injections.
    wrong_values = {
        "v": [2, "1", True, None], "seq": [0, -1, 2**31, 2**70, 1.5, "5", True, None, [1]],
        "type": ["panic", 1, None, ""], "t": [1000, 1577836799, int(time.time()) + 2 * 86400,
                                              "now", 1.5, 2**70],
        "fix": [None, [], "G", {"m": "X"}, {"m": "G"}, {"m": "G", "lat": 91, "lon": 1},
                {"m": "G", "lat": 1, "lon": -181}, {"m": "G", "lat": 1e308, "lon": 1},
                {"m": "G", "lat": "1", "lon": 1}, {"m": "N", "lat": 1},
                {"m": "N", "x": 1}, {"m": "G", "lat": 1, "lon": 1, "acc": -1}],
        "cell": [[], "LTE", {"rat": "5G", "mcc": 546, "mnc": 1, "lac": 1, "ci": 1},
                 {"rat": "LTE", "mcc": 1000, "mnc": 1, "lac": 1, "ci": 1}, {"rat": "LTE"}],
        "bat": [-1, 10_001, "full", 1.5], "csq": [32, -1, "good"],
        "fw": ["", "x" * 33, 1, None, "\u0000", "\ud800", "\n"],
        "dev": ["", "x" * 33, 1, None, "NC 1", "\u0000", "\ud800"] + list(SQL_INJECTIONS),
        "aid": ["XYZ", 1, "3FA9C01B"] + list(SQL_INJECTIONS),
        "cmd": [-1, "1", 2**40],
        "ch": ["dialing", {"call": "ringing"}, {"x": 1}],
        "extra": [1],
    }
    for key, values in wrong_values.items():
        for value in values:
            message = dict(base)
            message[key] = value
            if key == "aid":
                message["type"], message["ch"] = "position", {"call": "idle"}
            out.append(signed(device, f"{key}={value!r:.30}", encode(message)))
    for key in ("v", "dev", "seq", "type", "t", "fix", "cell", "bat", "csq", "fw"):
        message = {k: v for k, v in base.items() if k != key}
        out.append(signed(device, f"missing {key}", encode(message)))
    alarm = {**base, "type": "alarm"}  # an alarm without aid, at and ch
    out.append(signed(device, "alarm without aid", encode(alarm)))
    for injection in SQL_INJECTIONS:
        out.append(unsigned(f"injection in dev {injection[:12]}", encode({**base, "dev": injection})))

    # Content types.
    out.append(Case("text/plain", good, {"Content-Type": "text/plain",
                                         "X-TGD-Signature": device.sign(good)}))
    out.append(Case("no content type", good, {"X-TGD-Signature": device.sign(good)}))

    # Transport: truncated bodies and chunked encodings.
    head = (f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-TGD-Signature: {device.sign(good)}\r\nConnection: close\r\n")
    out.append(_raw("truncated body", head + f"Content-Length: {len(good) + 50}\r\n\r\n", good))
    chunked = head + "Transfer-Encoding: chunked\r\n\r\n"
    out.append(_raw("chunk size zz", chunked, b"zz\r\nhello\r\n0\r\n\r\n"))
    out.append(_raw("chunk without terminator", chunked, b"5\r\nhello"))
    out.append(_raw("chunk longer than said", chunked, b"2\r\nhello\r\n0\r\n\r\n"))
    out.append(_raw("huge chunk size", chunked, b"ffffffffffffffff\r\nx\r\n0\r\n\r\n"))
    out.append(_raw("chunked garbage", chunked, b"5\r\n{\"v\":\r\n0\r\n\r\n"))
    return out


def replays(device: ProbeDevice, client) -> tuple[int, list[Case]]:
    """Send one valid message (accepted: it counts as valid), then its replays as cases."""
    message = device.message()
    body = encode(message)
    status, _h, _b = client.request("POST", PATH, body, {
        "Content-Type": "application/json", "X-TGD-Signature": device.sign(body)})
    accepted = 1 if status == 200 else 0
    return accepted, [signed(device, "replay", body), signed(device, "replay again", body)]
