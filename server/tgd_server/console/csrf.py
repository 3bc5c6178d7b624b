"""CSRF tokens for every POST form of the console (synchronizer token in the session).

One random token per session, rotated at login; every form carries it in a hidden
field `csrf_token` (or `X-CSRF-Token` for fetch calls); any POST without the right
token is refused before the view runs.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import MutableMapping

SESSION_KEY = "csrf_token"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


class CsrfError(Exception):
    """The POST did not carry the session's CSRF token."""


def token(session: MutableMapping) -> str:
    """The session's token, created on first use."""
    value = session.get(SESSION_KEY)
    if not value:
        value = secrets.token_urlsafe(32)
        session[SESSION_KEY] = value
    return value


def rotate(session: MutableMapping) -> str:
    session[SESSION_KEY] = secrets.token_urlsafe(32)
    return session[SESSION_KEY]


def check(session: MutableMapping, submitted: str | None) -> None:
    expected = session.get(SESSION_KEY)
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise CsrfError("missing or wrong CSRF token")
