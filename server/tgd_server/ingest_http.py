"""HTTP edge of the ingest core: POST /api/v1/device/messages (docs/protocol.md).

`DeviceMessageEndpoint` is a WSGI middleware that create_app() puts in front of
Flask: it answers POST /api/v1/device/messages itself, without Flask's request
and app contexts, URL routing, Request/Response objects and teardown (about half
the CPU of a device message). It performs exactly the checks of the Flask view
below, which stays for any app built without the middleware: the same size
limit, content type, security log, ingest core and answers.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES, parse_options_header
from werkzeug.wsgi import get_content_length, get_input_stream

from . import db
from .ingest import IngestResult, ingest_device_message, log_ingest_refusal
from .message import MAX_BODY_BYTES
from .security_log import refusal_row

bp = Blueprint("ingest", __name__)
log = logging.getLogger("tgd.ingest.http")

PATH = "/api/v1/device/messages"
SIGNATURE_HEADER = "X-TGD-Signature"
_SIGNATURE_ENVIRON = "HTTP_X_TGD_SIGNATURE"
_SERVER_ERROR = {"ok": False, "error": "server_error", "detail": "retry later"}


def _answer(result: IngestResult):
    response = jsonify(result.answer)
    response.status_code = result.status
    response.headers["Cache-Control"] = "no-store"
    return response


def _refuse(status: int, code: str, detail: str, body: bytes = b""):
    log_ingest_refusal(db.session_factory(),
                       refusal_row("http", request.remote_addr or "", code, detail=detail, body=body))
    return _answer(IngestResult(status, {"ok": False, "error": code, "detail": detail}))


def _read_body() -> bytes | None:
    """The body, or None if it is over the limit (read no more than the limit + 1)."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        return None
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if declared is not None and len(body) < declared:
        from werkzeug.exceptions import BadRequest

        raise BadRequest(f"body of {len(body)} bytes, Content-Length {declared}")
    return None if len(body) > MAX_BODY_BYTES else body


@bp.post(PATH)
def device_message():
    body = _read_body()
    if body is None:
        return _refuse(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
    if request.mimetype != "application/json":
        return _refuse(415, "bad_content_type",
                       f"Content-Type must be application/json, got {request.mimetype or 'none'}",
                       body)
    result = ingest_device_message(body, request.headers.get(SIGNATURE_HEADER), "http",
                                   request.remote_addr or "")
    return _answer(result)


@bp.errorhandler(Exception)
def unexpected_error(exc: Exception):
    """Last resort: a logged 500 that the handset retries (the fuzz test proves none happen
    for bad input). HTTP errors raised by Werkzeug keep their own status."""
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, HTTPException):
        response = jsonify({"ok": False, "error": "http_error", "detail": exc.description})
        response.status_code = exc.code or 400
        return response
    log.exception("ingest failed: %s", exc)
    response = jsonify({"ok": False, "error": "server_error", "detail": "retry later"})
    response.status_code = 500
    return response


class DeviceMessageEndpoint:
    """WSGI middleware: POST /api/v1/device/messages straight into the ingest core;
    every other request goes on to `app` (Flask)."""

    def __init__(self, app, sessionmaker_) -> None:
        self.app = app
        self.factory = sessionmaker_

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        try:
            status, answer = self.handle(environ)
        except HTTPException as exc:  # an unreadable body (malformed chunked encoding...)
            status = exc.code or 400
            answer = {"ok": False, "error": "http_error", "detail": exc.description}
            try:  # logged like every refusal
                self.refuse(environ.get("REMOTE_ADDR") or "", status, "http_error",
                            exc.description or "")
            except Exception as log_error:
                log.exception("security log of an HTTP error failed: %s", log_error)
        except Exception as exc:
            log.exception("ingest failed: %s", exc)
            status, answer = 500, _SERVER_ERROR
        # The bytes Flask's jsonify() would send.
        body = (json.dumps(answer, separators=(",", ":"), sort_keys=True) + "\n").encode()
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN')}", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ])
        return [body]

    def handle(self, environ) -> tuple[int, dict]:
        source = environ.get("REMOTE_ADDR") or ""
        declared = get_content_length(environ)
        if declared is not None and declared > MAX_BODY_BYTES:
            return self.refuse(source, 413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
        body = get_input_stream(environ).read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return self.refuse(source, 413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
        if declared is not None and len(body) != declared:  # gunicorn hands a short read on
            return self.refuse(source, 400, "truncated",
                               f"body of {len(body)} bytes, Content-Length {declared}", body)
        mimetype = parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower()
        if mimetype != "application/json":
            return self.refuse(source, 415, "bad_content_type",
                               f"Content-Type must be application/json, got {mimetype or 'none'}",
                               body)
        result = ingest_device_message(body, environ.get(_SIGNATURE_ENVIRON), "http", source,
                                       factory=self.factory)
        return result.status, result.answer

    def refuse(self, source: str, status: int, code: str, detail: str,
               body: bytes = b"") -> tuple[int, dict]:
        log_ingest_refusal(self.factory, refusal_row("http", source, code, detail=detail,
                                                     body=body))
        return status, {"ok": False, "error": code, "detail": detail}
