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


def log_refusal(channel: str, source: str, event: str, device_id: str | None = None,
                detail: str = "", body: bytes = b"",
                factory: sessionmaker | None = None) -> None:
    log.warning("refused channel=%s source=%s event=%s dev=%s detail=%s",
                channel, source, event, device_id, detail)
    factory = factory or db.session_factory()
    with factory() as session:
        session.add(SecurityLog(channel=channel, source=source[:128], event=event,
                                device_id=device_id[:64] if device_id else None,
                                detail=detail[:1000], body_excerpt=excerpt(body)))
        session.commit()
