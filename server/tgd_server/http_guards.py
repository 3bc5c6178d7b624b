"""HTTP guards every route gets, so that no input reaches the database as a 500.

- `<int:...>` in a URL matches 0..MAX_ROW_ID only (PostgreSQL ids are 32-bit; SQLite
  overflows beyond 64 bits): a larger id is no route, a 404, not a database error.
- A request body the server cannot read (malformed chunked encoding, a body shorter
  than its Content-Length) is a 400, on Werkzeug's server and on gunicorn
  (`ReadableInput` turns the server's OSError into werkzeug's BadRequest).
- Text no database stores (NUL) in the path, the query string or a form is a 400.
- Under /api: every error is the documented JSON `{"ok": false, "error", "detail"}`
  (an unknown path, a wrong method), and every answer is `Cache-Control: no-store`
  (answers carry positions and cases).
"""

from __future__ import annotations

from flask import jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.routing import IntegerConverter

from .db import MAX_ROW_ID

API_PREFIX = "/api/"

try:  # gunicorn's body errors (InvalidChunkSize, ChunkMissingTerminator...) are not OSError
    from gunicorn.http.errors import ParseException as _GunicornParseError
except ImportError:  # pragma: no cover - gunicorn is a dependency
    class _GunicornParseError(Exception):
        pass

_READ_ERRORS = (OSError, ValueError, _GunicornParseError)


class RowIdConverter(IntegerConverter):
    """`<int:name>`: a non-negative integer no larger than a database row id can be."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = None, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min,
                         max=MAX_ROW_ID if max is None else max, signed=signed)


class _GuardedStream:
    """A wsgi.input whose read errors (the server's OSError) are a 400."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def _guard(self, method, *args):
        try:
            return method(*args)
        except HTTPException:
            raise
        except _READ_ERRORS as exc:  # Werkzeug: OSError; gunicorn: InvalidChunkSize...
            raise BadRequest(f"unreadable request body: {type(exc).__name__}") from None

    def read(self, *args):
        return self._guard(self._stream.read, *args)

    def readline(self, *args):
        return self._guard(self._stream.readline, *args)

    def readlines(self, *args):
        return self._guard(self._stream.readlines, *args)

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def close(self):
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class ReadableInput:
    """WSGI middleware: the request body's read errors become 400 Bad Request."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        stream = environ.get("wsgi.input")
        if stream is not None:
            environ["wsgi.input"] = _GuardedStream(stream)
        return self.app(environ, start_response)


def api_error(status: int, code: str, detail: str):
    response = jsonify({"ok": False, "error": code, "detail": detail})
    response.status_code = status
    return response


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "too_large", 415: "bad_content_type"}


def http_error(exc: HTTPException):
    if not request.path.startswith(API_PREFIX) or (exc.code or 500) < 400:  # e.g. a redirect
        return exc  # the console's own pages (or Werkzeug's)
    status = exc.code or 500
    response = api_error(status, _HTTP_CODES.get(status, "http_error"),
                         exc.description or exc.name)
    if status == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _refuse_unstorable_text():
    values = [request.path, *request.args.values()]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values += list(request.form.values())
    if any("\x00" in value for value in values):
        if request.path.startswith(API_PREFIX):
            return api_error(400, "bad_value", "NUL characters are not allowed")
        return "NUL characters are not allowed", 400
    return None


def _no_store(response):
    if request.path.startswith(API_PREFIX):
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app) -> None:
    """Before any blueprint: the converter applies to the rules registered after it."""
    app.url_map.converters["int"] = RowIdConverter
    app.register_error_handler(HTTPException, http_error)
    app.before_request(_refuse_unstorable_text)
    app.after_request(_no_store)
