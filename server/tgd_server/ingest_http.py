"""HTTP edge of the ingest core: POST /api/v1/device/messages (docs/protocol.md)."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from . import db
from .ingest import IngestResult, ingest_device_message, log_ingest_refusal
from .message import MAX_BODY_BYTES
from .security_log import refusal_row

bp = Blueprint("ingest", __name__)
log = logging.getLogger("tgd.ingest.http")

SIGNATURE_HEADER = "X-TGD-Signature"


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
    return None if len(body) > MAX_BODY_BYTES else body


@bp.post("/api/v1/device/messages")
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
