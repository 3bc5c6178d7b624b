"""AT+HTTP* performed for real against a tiny local HTTP server, and the HTTP faults."""

import http.server
import threading

import pytest

from tgd_rig.emulator import Timing


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append(
            (self.command, self.path, self.headers, body))  # case-insensitive lookups
        status, answer = self.server.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.seen = []
    srv.answer = (200, b'{"ok":true,"ack":1}')
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/api/v1/device/messages"
    yield srv
    srv.shutdown()
    srv.server_close()




def _post(at, url, body=b'{"v":1}', userdata="X-TGD-Signature: abc123"):
    assert at.command("AT+HTTPINIT") == b"\r\nOK\r\n"
    assert at.command(f'AT+HTTPPARA="URL","{url}"') == b"\r\nOK\r\n"
    assert at.command('AT+HTTPPARA="CONTENT","application/json"') == b"\r\nOK\r\n"
    assert at.command(f'AT+HTTPPARA="USERDATA","{userdata}"') == b"\r\nOK\r\n"
    at.send(f"AT+HTTPDATA={len(body)},5000")
    assert at.expect(b"\r\nDOWNLOAD\r\n", 2) == b"\r\nDOWNLOAD\r\n"
    at.write(body)
    assert at.expect(b"\r\nOK\r\n", 2) == b"\r\nOK\r\n"
    assert at.command("AT+HTTPACTION=1") == b"\r\nOK\r\n"


def test_post_reaches_the_server_with_headers_and_reads_back(at, server, net):
    _post(at, server.url)
    answer = b'{"ok":true,"ack":1}'
    assert at.expect(b"\r\n", 3) == b"\r\n"
    assert at.expect(b"\r\n", 3) == f"+HTTPACTION: 1,200,{len(answer)}\r\n".encode()
    [(method, path, headers, body)] = server.seen
    assert (method, path, body) == ("POST", "/api/v1/device/messages", b'{"v":1}')
    assert headers["X-TGD-Signature"] == "abc123"
    assert headers["Content-Type"] == "application/json"
    assert at.command("AT+HTTPREAD?") == f"\r\n+HTTPREAD: LEN,{len(answer)}\r\n\r\nOK\r\n".encode()
    at.send("AT+HTTPREAD=0,500")
    assert at.expect(b"+HTTPREAD: 0\r\n", 2) == (
        b"\r\nOK\r\n\r\n+HTTPREAD: DATA,19\r\n" + answer + b"\r\n+HTTPREAD: 0\r\n")
    at.send("AT+HTTPREAD=5,4")
    assert at.expect(b"+HTTPREAD: 0\r\n", 2) == (
        b"\r\nOK\r\n\r\n+HTTPREAD: DATA,4\r\n" + answer[5:9] + b"\r\n+HTTPREAD: 0\r\n")
    assert at.command("AT+HTTPTERM") == b"\r\nOK\r\n"
    assert at.command("AT+HTTPTERM") == b"\r\nERROR\r\n"
    kinds = [e["kind"] for e in net.events if e["kind"].startswith("http")]
    assert kinds == ["http_request", "http_response"]


def test_server_error_status_and_body_come_back(at, server):
    server.answer = (409, b'{"error":"replay"}')
    _post(at, server.url)
    assert at.expect(b"+HTTPACTION: 1,409,18\r\n", 3)


def test_http_strictness(at, server):
    assert at.command("AT+HTTPACTION=1") == b"\r\nERROR\r\n"  # before HTTPINIT
    assert at.command("AT+HTTPINIT") == b"\r\nOK\r\n"
    assert at.command("AT+HTTPINIT") == b"\r\nERROR\r\n"  # twice
    assert at.command("AT+HTTPACTION=1") == b"\r\nERROR\r\n"  # before the URL
    assert at.command('AT+HTTPPARA="URL","ftp://x"') == b"\r\nERROR\r\n"
    assert at.command('AT+HTTPPARA="NOPE","x"') == b"\r\nERROR\r\n"
    assert at.command("AT+HTTPREAD=0,10") == b"\r\nERROR\r\n"  # nothing to read
    assert at.command("AT+HTTPACTION=9") == b"\r\nERROR\r\n"


def test_httpdata_times_out_on_short_input(at):
    at.command("AT+HTTPINIT")
    at.send("AT+HTTPDATA=10,200")
    at.expect(b"DOWNLOAD\r\n")
    at.write(b"abc")
    assert at.expect(b"ERROR\r\n", 2) == b"\r\nERROR\r\n"
    assert at.command("AT") == b"\r\nOK\r\n"  # back in command mode


def test_unreachable_server_gives_modem_error(at):
    _post(at, "http://127.0.0.1:9/x")
    assert at.expect(b"+HTTPACTION: 1,714,0\r\n", 5)


def test_fault_http_status_is_made_by_the_network(at, server, modem):
    modem.inject("http_status", status=503)
    _post(at, server.url)
    assert at.expect(b"+HTTPACTION: 1,503,0\r\n", 3)
    assert server.seen == []


def test_fault_http_error(at, server, modem):
    modem.inject("http_error", status=713, count=1)
    _post(at, server.url)
    assert at.expect(b"+HTTPACTION: 1,713,0\r\n", 3)
    at.command("AT+HTTPTERM")
    _post(at, server.url)  # only the next one failed
    assert at.expect(b"+HTTPACTION: 1,200,19\r\n", 3)


@pytest.mark.parametrize("reach_server", [False, True])
def test_fault_http_timeout(at, server, modem, reach_server):
    modem.inject("http_timeout", reach_server=reach_server)
    _post(at, server.url)
    assert at.expect(b"+HTTPACTION: 1,705,0\r\n", 3)
    assert len(server.seen) == (1 if reach_server else 0)


def test_without_the_required_apn_gives_601(at, server, net):
    net.required_apn = "mobilis"
    _post(at, server.url)
    assert at.expect(b"+HTTPACTION: 1,601,0\r\n", 3)
    assert server.seen == []
    assert at.command("AT+HTTPTERM") == b"\r\nOK\r\n"
    assert at.command('AT+CGDCONT=1,"IP","mobilis"') == b"\r\nOK\r\n"
    _post(at, server.url)
    assert at.expect(b"+HTTPACTION: 1,200,", 3)
    assert len(server.seen) == 1


def test_no_service_gives_601(at, server, modem):
    modem.inject("no_service")
    _post(at, server.url)
    assert at.expect(b"+HTTPACTION: 1,601,0\r\n", 3)


def test_reboot_during_http_after_the_server_got_it(at, server, modem, net):
    modem.inject("reboot_during_http", reach_server=True)
    _post(at, server.url)
    got = at.expect(b"PB DONE\r\n", 3)
    assert b"+HTTPACTION" not in got and got.endswith(b"\r\nRDY\r\n\r\n+CPIN: READY\r\n"
                                                      b"\r\nSMS DONE\r\n\r\nPB DONE\r\n")
    assert len(server.seen) == 1
    assert at.command("AT+HTTPTERM") == b"AT+HTTPTERM\r\r\nERROR\r\n"  # session lost


def test_https_without_certificate_check(at, tmp_path):
    """A TLS server with a self-signed certificate is reached (the modem does not verify)."""
    import ssl
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert), "-days", "1"], capture_output=True)
    if made.returncode != 0:
        pytest.skip("openssl not available")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.seen, srv.answer = [], (200, b"{}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        _post(at, f"https://127.0.0.1:{srv.server_address[1]}/m")
        assert at.expect(b"+HTTPACTION: 1,200,2\r\n", 5)
        assert len(srv.seen) == 1
    finally:
        srv.shutdown()
        srv.server_close()


def test_large_answer_is_read_whole_at_uart_pace(net, server, at):
    """A 100 kB answer goes through the pty whole, paced like the UART (fast: x100)."""
    big = bytes(range(256)) * 400
    server.answer = (200, big)
    _post(at, server.url)
    assert at.expect(f"+HTTPACTION: 1,200,{len(big)}\r\n".encode(), 3)
    at.send(f"AT+HTTPREAD=0,{len(big)}")
    got = at.expect(b"\r\n+HTTPREAD: 0\r\n", 10)
    assert got == (b"\r\nOK\r\n\r\n+HTTPREAD: DATA,102400\r\n" + big + b"\r\n+HTTPREAD: 0\r\n")


def test_uart_pace_in_realistic_timing():

    assert Timing.realistic().uart_bps == 115200
    assert Timing.fast(0.01).uart_bps == pytest.approx(11520000)


def test_realistic_uart_pace_is_a_lower_bound(net, server, at):
    """At 115200 baud 5760 bytes take at least 0.5 s to reach the host."""
    import time
    from dataclasses import replace

    server.answer = (200, b"x" * 5760)
    _post(at, server.url)
    at.expect(b"+HTTPACTION: 1,200,5760\r\n", 3)
    net.timing = replace(net.timing, uart_bps=115200.0)
    start = time.monotonic()
    at.send("AT+HTTPREAD=0,5760")
    at.expect(b"\r\n+HTTPREAD: 0\r\n", 10)
    assert time.monotonic() - start >= 0.5


def test_realistic_uart_pace_host_to_modem(net, at):
    """The host's 5760-byte HTTPDATA reaches the modem no sooner than 0.5 s at 115200 baud."""
    import time
    from dataclasses import replace

    at.command("AT+HTTPINIT")
    net.timing = replace(net.timing, uart_bps=115200.0)
    at.send("AT+HTTPDATA=5760,10000")
    at.expect(b"DOWNLOAD\r\n", 2)
    start = time.monotonic()
    at.write(b"y" * 5760)
    at.expect(b"\r\nOK\r\n", 5)
    assert time.monotonic() - start >= 0.5


def test_coverage_lost_while_the_server_answers(net, server, modem, at):
    """The server got the request, the answer is lost with the coverage: 601 and a URC."""
    from dataclasses import replace

    net.timing = replace(net.timing, http_rtt_s=(0.6, 0.6))  # 0.3 s back from the server
    import time

    _post(at, server.url)
    deadline = time.monotonic() + 3
    while not server.seen and time.monotonic() < deadline:
        time.sleep(0.005)
    modem.inject("no_service")  # within the 0.3 s the answer takes to come back
    got = at.expect(b"+HTTPACTION: 1,601,0\r\n", 3)
    assert b"\r\n+HTTP_NONET_EVENT\r\n" in got
    assert len(server.seen) == 1


def test_coverage_lost_before_the_request_left(net, server, modem, at):
    from dataclasses import replace

    net.timing = replace(net.timing, http_rtt_s=(0.6, 0.6))  # sent 0.3 s after HTTPACTION
    _post(at, server.url)
    modem.inject("no_service")
    assert at.expect(b"+HTTPACTION: 1,601,0\r\n", 3)
    assert server.seen == []
