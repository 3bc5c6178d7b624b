"""HTTP(S) service: HTTPINIT, HTTPPARA, HTTPDATA (DOWNLOAD), HTTPACTION, HTTPREAD, HTTPTERM.

The request is performed for real (urllib, in the network's worker threads) against
the URL the host set, with USERDATA as extra header lines and CONTENT as the
Content-Type; an LTE round trip is added around it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .atparse import EXEC, READ, SET, AtSyntaxError, Command
from .errors import Refused
from .network import HTTP_NETWORK_ERROR, HTTP_TIMEOUT
from .state import HttpSession

if TYPE_CHECKING:
    from .modem import Sim7600Emulator

METHODS = {0: "GET", 1: "POST", 2: "HEAD", 3: "DELETE"}
MAX_BODY = 153600
_PARAMS = {"URL", "USERDATA", "CONTENT", "CID", "ACCEPT", "UA", "CONNECTTO", "RECVTO",
           "READMODE", "SSLCFG"}


def _session(m: Sim7600Emulator) -> HttpSession:
    if m.settings.http is None:
        raise Refused("HTTP service not initialised (AT+HTTPINIT)")
    return m.settings.http


def httpinit(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != EXEC:
        raise AtSyntaxError("HTTPINIT takes no argument")
    if m.settings.http is not None:
        raise Refused("HTTPINIT twice")
    m.settings.http = HttpSession()
    return ["OK"]


def httppara(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != SET:
        raise AtSyntaxError("HTTPPARA: set form only")
    session = _session(m)
    cmd.nargs(2, 2)
    name = cmd.arg_str(0).upper()
    if name not in _PARAMS:
        raise AtSyntaxError(f"HTTPPARA: unknown parameter {name!r}")
    if name in ("CONNECTTO", "RECVTO"):
        seconds = cmd.arg_int(1, 2, 120)
        if name == "CONNECTTO":
            session.connect_timeout_s = float(seconds)
        else:
            session.recv_timeout_s = float(seconds)
        return ["OK"]
    if name in ("CID", "READMODE", "SSLCFG"):
        cmd.arg_int(1, 0, 24)
        return ["OK"]
    value = cmd.arg_str(1)
    if name == "URL":
        if not value.lower().startswith(("http://", "https://")):
            raise AtSyntaxError(f"HTTPPARA URL: not http(s): {value!r}")
        session.url = value
    elif name == "USERDATA":
        session.userdata = value
    elif name == "CONTENT":
        session.content = value
    return ["OK"]


def httpdata(m: Sim7600Emulator, cmd: Command) -> list[str] | None:
    if cmd.kind != SET:
        raise AtSyntaxError("HTTPDATA: set form only")
    session = _session(m)
    cmd.nargs(2, 2)
    length = cmd.arg_int(0, 1, MAX_BODY)
    timeout_ms = cmd.arg_int(1, 1, 3_600_000)

    def done(payload: bytes | None) -> None:
        if payload is None:
            m.finish(["ERROR"])
            return
        session.body = payload
        m.finish(["OK"])

    # The host's own deadline: wall-clock, not scaled.
    m.start_data_input(length, timeout_ms / 1000.0, done)
    return None


def _headers(session: HttpSession) -> dict[str, str]:
    headers = {"Content-Type": session.content, "User-Agent": "SIMCOM_MODULE"}
    # USERDATA may carry several header lines separated by a literal "\r\n".
    for part in session.userdata.replace("\\r\\n", "\n").replace("\r\n", "\n").split("\n"):
        if ":" in part:
            key, value = part.split(":", 1)
            headers[key.strip()] = value.strip()
    return headers


def httpaction(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != SET:
        raise AtSyntaxError("HTTPACTION: set form only")
    session = _session(m)
    cmd.nargs(1, 1)
    method_id = cmd.arg_int(0, 0, 3)
    if session.url is None:
        raise Refused("HTTPACTION before HTTPPARA URL")
    if session.in_flight:
        raise Refused("HTTPACTION while one is in progress")
    session.in_flight = True
    session.response = None
    session.status = None
    m.later(0, _start, m, session, method_id)  # after the OK
    return ["OK"]


def _start(m: Sim7600Emulator, session: HttpSession, method_id: int) -> None:
    method = METHODS[method_id]
    body = session.body if method in ("POST",) else None
    url = session.url or ""
    m.net.event("http_request", modem=m.msisdn, method=method, url=url, length=len(body or b""),
                body=(body or b"")[:4096].decode("utf-8", "replace"))
    timing = m.net.timing
    rtt = m.draw("http_rtt_s")
    timeout = session.recv_timeout_s or timing.http_timeout_s

    def answer(status: int, data: bytes) -> None:
        if m.settings.http is not session:
            return  # HTTPTERM or reboot meanwhile: the answer is dropped
        if not m.data_up and status < 600:
            # Coverage went while the server was answering: the answer never arrives.
            status, data = HTTP_NETWORK_ERROR, b""
        session.in_flight = False
        if data and status < 600 and m.faults.armed("http_corrupt"):
            data = _corrupted(m, method, data)
        session.status = status
        session.response = data
        m.net.event("http_response", modem=m.msisdn, status=status, length=len(data))
        m.urc(f"+HTTPACTION: {method_id},{status},{len(data)}")

    reboot = m.faults.take("reboot_during_http")
    if reboot is not None:
        if reboot["reach_server"]:
            m.net.http_request(method, url, body, _headers(session), timeout,
                               lambda status, data: m.reboot("fault: reboot during HTTP"))
        else:
            m.reboot("fault: reboot during HTTP")
        return
    if not m.data_up:
        m.later(rtt, answer, HTTP_NETWORK_ERROR, b"")
        return
    fault = m.faults.take("http_status")
    if fault is not None:
        m.later(rtt, answer, fault["status"], b"")
        return
    fault = m.faults.take("http_error")
    if fault is not None:
        m.later(rtt, answer, fault["status"], b"")
        return
    fault = m.faults.take("http_timeout")
    if fault is not None:
        if fault["reach_server"]:
            m.net.http_request(method, url, body, _headers(session), timeout, lambda s, d: None)
        m.later(timeout, answer, HTTP_TIMEOUT, b"")
        return

    def send() -> None:
        if not m.data_up:
            m.later(rtt / 2, answer, HTTP_NETWORK_ERROR, b"")  # coverage went before sending
            return
        m.net.http_request(
            method, url, body, _headers(session), timeout,
            lambda status, data: m.later(rtt / 2, answer, status, data),
        )

    m.later(rtt / 2, send)


def _corrupted(m: Sim7600Emulator, method: str, data: bytes) -> bytes:
    """The http_corrupt fault: one byte of the body flipped, for a request of its method."""
    fault = m.faults.take("http_corrupt")
    if fault is None:
        return data
    if fault["method"] != method:
        m.faults.arm("http_corrupt", 1, **fault)  # not this request: it stays armed
        return data
    i = len(data) // 2
    m.net.event("http_corrupted", modem=m.msisdn, offset=i)
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]


def radio_lost(m: Sim7600Emulator) -> None:
    """Registration lost with an HTTP session open: the modem says so."""
    if m.settings.http is not None:
        m.urc("+HTTP_NONET_EVENT")


def httpread(m: Sim7600Emulator, cmd: Command) -> list[str] | None:
    session = _session(m)
    data = session.response
    if cmd.kind == READ:
        return [f"+HTTPREAD: LEN,{len(data or b'')}", "OK"]
    if cmd.kind != SET:
        raise AtSyntaxError("HTTPREAD: read or set form")
    if data is None:
        raise Refused("HTTPREAD without a response")
    cmd.nargs(2, 2)
    start = cmd.arg_int(0, 0, MAX_BODY)
    size = cmd.arg_int(1, 1, MAX_BODY)
    if start > len(data):
        raise Refused("HTTPREAD past the end")
    chunk = data[start : start + size]
    # OK first, then the data block: `+HTTPREAD: DATA,<n>`, the bytes, `+HTTPREAD: 0`.
    m.respond(["OK"])
    m.emit(b"\r\n+HTTPREAD: DATA," + str(len(chunk)).encode() + b"\r\n" + chunk
           + b"\r\n+HTTPREAD: 0\r\n")
    return None


def httpterm(m: Sim7600Emulator, cmd: Command) -> list[str]:
    if cmd.kind != EXEC:
        raise AtSyntaxError("HTTPTERM takes no argument")
    _session(m)
    m.settings.http = None
    return ["OK"]


COMMANDS = {
    "+HTTPINIT": httpinit,
    "+HTTPPARA": httppara,
    "+HTTPDATA": httpdata,
    "+HTTPACTION": httpaction,
    "+HTTPREAD": httpread,
    "+HTTPTERM": httpterm,
}
