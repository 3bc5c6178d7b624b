"""The security log: one row per refused request, written in its own transaction."""

from __future__ import annotations

import logging

from sqlalchemy.orm import sessionmaker

from . import db
from .models import SecurityLog

log = logging.getLogger("tgd.security")

_EXCERPT_BYTES = 2048


def excerpt(body: bytes) -> str:
    """Printable first bytes of a refused body (kept so a refused alarm can still be read)."""
    return body[:_EXCERPT_BYTES].decode("utf-8", errors="backslashreplace")


def refusal_row(channel: str, source: str, event: str, device_id: str | None = None,
                detail: str = "", body: bytes = b"") -> SecurityLog:
    """The security-log row of a refusal (logged as one line too), not yet stored."""
    log.warning("refused channel=%s source=%s event=%s dev=%s detail=%s",
                channel, source, event, device_id, detail)
    return SecurityLog(channel=channel, source=source[:128], event=event,
                       device_id=device_id[:64] if device_id else None,
                       detail=detail[:1000], body_excerpt=excerpt(body))


def log_refusal(channel: str, source: str, event: str, device_id: str | None = None,
                detail: str = "", body: bytes = b"",
                factory: sessionmaker | None = None) -> None:
    """Store a refusal in its own transaction (the console, the API).

    The device ingest stores its refusals through its writer instead
    (ingest.log_ingest_refusal), so that a flood of bad requests costs no extra
    transactions and cannot starve real messages of the database."""
    row = refusal_row(channel, source, event, device_id, detail, body)
    factory = factory or db.session_factory()
    with factory() as session:
        session.add(row)
        session.commit()
