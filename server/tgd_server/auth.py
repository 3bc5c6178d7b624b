"""Users, passwords, API tokens, roles and the audit trail.

- Passwords: argon2id (argon2-cffi defaults), rehashed on login when the
  parameters change.
- API tokens: 32 random bytes shown once; only their SHA-256 is stored (a token
  has full entropy, so a fast hash is enough and lookups stay indexed).
- `require_role(...)` guards an API view with a bearer token.
- `audit(user, action, object_type, object_id)` records who saw or changed what;
  the console calls it for its pages, the API for its answers.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import g, jsonify, request
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from . import db
from .models import ROLES, ApiToken, AuditLog, User, utcnow

_hasher = PasswordHasher()
# Verifying against this keeps the time of "unknown user" equal to "wrong password".
_DUMMY_HASH = _hasher.hash("not a password")

TOKEN_PREFIX = "tgd_"

# Who may do what through the API and the console.
DEVICE_MANAGERS = ("technician", "admin")
DEVICE_READERS = ("supervisor", "technician", "admin")
CASE_READERS = ("operator", "supervisor")


class AuthError(Exception):
    """Bad input for a user or token operation (unknown role, weak password...)."""


def hash_password(password: str) -> str:
    if len(password) < 10:
        raise AuthError("a password needs at least 10 characters")
    return _hasher.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    """True if `password` is `user`'s; takes the same time for an unknown user."""
    if user is None or not user.active:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return False
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username))
    if not verify_password(user, password):
        return None
    user.last_login_at = utcnow()
    return user


def record_login(user_id: int, password: str) -> User:
    """A successful login: its time, and the password rehashed if the parameters changed."""
    with db.write_session() as session:
        user = session.get(User, user_id)
        user.last_login_at = utcnow()
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        return user


def create_user(session: Session, username: str, role: str, password: str,
                display_name: str = "") -> User:
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not username or len(username) > 64:
        raise AuthError("a username has 1 to 64 characters")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise AuthError(f"user {username!r} exists")
    user = User(username=username, role=role, password_hash=hash_password(password),
                display_name=display_name or username)
    session.add(user)
    session.flush()
    return user


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: User, name: str = "") -> str:
    """A new API token for `user`; the clear token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, token_hash=token_digest(token)))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(token)))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_GRANULARITY:
        _touch_token(row.id, now)
    return row.user


# A token's last use is kept to the minute: one write per token per minute, not one per call.
_LAST_USED_GRANULARITY = timedelta(minutes=1)
log = logging.getLogger("tgd.auth")


def _touch_token(token_id: int, now) -> None:
    """Record a token's use in a writer transaction of its own (BEGIN IMMEDIATE on SQLite).

    Writing it from the request's read transaction made SQLite refuse the upgrade
    ("database is locked") while the ingest writer committed. It is bookkeeping, so a
    busy database skips it rather than failing the request.
    """
    try:
        with db.write_session() as session:
            session.execute(update(ApiToken).where(ApiToken.id == token_id)
                            .values(last_used_at=now))
    except OperationalError as exc:
        log.warning("token %s last use not recorded: %s", token_id, exc.orig)


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _api_error(status: int, error: str, detail: str):
    response = jsonify({"ok": False, "error": error, "detail": detail})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="tgd"'
    return response


def require_role(*roles: str) -> Callable:
    """API views: a valid bearer token of a user whose role is in `roles` (g.user)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise AuthError(f"unknown roles {sorted(unknown)}")

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            from .security_log import log_refusal

            token = _bearer_token()
            session = db.get_session()
            user = user_for_token(session, token) if token else None
            if user is None:
                session.rollback()  # end the read before the log's write transaction
                log_refusal("api", request.remote_addr or "", "bad_token",
                            detail=f"{request.method} {request.path}")
                return _api_error(401, "unauthorized", "a valid bearer token is required")
            if user.role not in roles:
                session.rollback()
                log_refusal("api", request.remote_addr or "", "forbidden",
                            detail=f"{user.username} ({user.role}) {request.method} {request.path}")
                return _api_error(403, "forbidden", f"role {user.role} may not do this")
            session.commit()  # end the token lookup's read: the view starts fresh (SQLite)
            g.user = user
            return view(*args, **kwargs)

        return wrapped

    return decorator


def audit(user: User | None, action: str, object_type: str, object_id,
          detail: str = "") -> None:
    """Record that `user` did `action` (view_alarm, ack_alarm, ...) on an object.

    Written and committed in its own transaction at once, so that a view is
    recorded even if the page then fails.
    """
    audit_many(user, action, object_type, [object_id], detail)


def audit_many(user: User | None, action: str, object_type: str, object_ids,
               detail: str = "") -> None:
    """One audit row per object, all in one transaction (a list view)."""
    rows = [AuditLog(user_id=user.id if user is not None else None,
                     username=user.username if user is not None else "system",
                     action=action, object_type=object_type, object_id=str(object_id),
                     detail=detail)
            for object_id in object_ids]
    if not rows:
        return
    with db.write_session() as session:
        session.add_all(rows)
