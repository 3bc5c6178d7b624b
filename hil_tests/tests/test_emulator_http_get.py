"""AT+HTTPACTION=0 (GET) of a binary body read in chunks, a Range header through
USERDATA (the handset's resumable update download, ota.py), and the http_corrupt fault."""

import http.server
import re
import threading
import time

import pytest

from tgd_rig.emulator import faults

BODY = bytes(range(256)) * 40 + b"\r\n+HTTPREAD: 0\r\nOK\r\n"  # 10 KiB of every byte value


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        rng = self.headers.get("Range")
        self.server.seen.append(rng)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        data, status = BODY, 200
        if m:
            end = int(m.group(2)) if m.group(2) else len(BODY) - 1
            data, status = BODY[int(m.group(1)):end + 1], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "11")
        self.end_headers()
        self.wfile.write(b'{"ok":true}')

    def log_message(self, *args):
        pass


@pytest.fixture
def bundle_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.seen = []
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/api/v1/fw/1.1.0/bundle"
    yield srv
    srv.shutdown()
    srv.server_close()


def _get(at, url, userdata=None):
    assert at.command("AT+HTTPINIT") == b"\r\nOK\r\n"
    assert at.command(f'AT+HTTPPARA="URL","{url}"') == b"\r\nOK\r\n"
    if userdata:
        assert at.command(f'AT+HTTPPARA="USERDATA","{userdata}"') == b"\r\nOK\r\n"
    assert at.command("AT+HTTPACTION=0") == b"\r\nOK\r\n"
    line = at.expect(b"\r\n+HTTPACTION:", 3) + at.expect(b"\r\n", 3)
    m = re.search(rb"\+HTTPACTION: 0,(\d+),(\d+)\r\n", line)
    assert m, line
    return int(m.group(1)), int(m.group(2))


def _read(at, start, size):
    """One AT+HTTPREAD, its data block taken by its count (the body may hold any bytes)."""
    at.send(f"AT+HTTPREAD={start},{size}")
    head = at.expect(b"+HTTPREAD: DATA,", 3)
    assert head == b"\r\nOK\r\n\r\n+HTTPREAD: DATA,", head
    n = int(at.expect(b"\r\n", 3)[:-2])
    trailer = b"\r\n+HTTPREAD: 0\r\n"
    deadline = time.monotonic() + 3
    while len(at.buffer) < n + len(trailer):
        assert time.monotonic() < deadline, bytes(at.buffer)
        at._pump()
    data = bytes(at.buffer[:n])
    assert bytes(at.buffer[n:n + len(trailer)]) == trailer
    del at.buffer[:n + len(trailer)]
    return data


def test_binary_body_in_chunks_with_a_range(at, bundle_server):
    status, length = _get(at, bundle_server.url, "Range: bytes=1000-")
    assert (status, length) == (206, len(BODY) - 1000)
    assert bundle_server.seen == ["bytes=1000-"]
    got = b"".join(_read(at, off, 1024) for off in range(0, length, 1024))
    assert got == BODY[1000:]  # every byte value, CR LF and "+HTTPREAD: 0" inside included
    assert _read(at, length, 10) == b""  # at the end: DATA,0
    assert at.command(f"AT+HTTPREAD={length + 1},10") == b"\r\nERROR\r\n"
    assert at.command("AT+HTTPTERM") == b"\r\nOK\r\n"


def test_a_new_session_resumes_after_a_power_cut(at, modem, bundle_server):
    status, length = _get(at, bundle_server.url, "Range: bytes=0-4095")
    first = _read(at, 0, 4096)
    assert status == 206 and first == BODY[:4096]
    # a new GET from where the first stopped (the handset's resume)
    assert at.command("AT+HTTPTERM") == b"\r\nOK\r\n"
    status, length = _get(at, bundle_server.url, f"Range: bytes={len(first)}-")
    rest = b"".join(_read(at, off, 2048) for off in range(0, length, 2048))
    assert first + rest == BODY


def test_http_corrupt_flips_one_byte_of_the_next_get_only(at, modem, bundle_server):
    faults.http_corrupt(modem)
    status, length = _get(at, bundle_server.url)
    got = b"".join(_read(at, off, 4096) for off in range(0, length, 4096))
    diff = [i for i in range(len(BODY)) if got[i] != BODY[i]]
    assert status == 200 and diff == [len(BODY) // 2] and got[diff[0]] == BODY[diff[0]] ^ 0xFF
    assert at.command("AT+HTTPTERM") == b"\r\nOK\r\n"
    status, length = _get(at, bundle_server.url)  # the fault was used up
    assert b"".join(_read(at, off, 4096) for off in range(0, length, 4096)) == BODY
