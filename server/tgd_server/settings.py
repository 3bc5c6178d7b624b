"""Settings from the environment (docs/server.md lists them)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


class SettingsError(Exception):
    """A setting has a value the server cannot run with."""


def _var_dir(environ) -> Path:
    return Path(environ.get("TGD_VAR_DIR") or "var").resolve()


def _secret_key(var_dir: Path, environ) -> str:
    """TGD_SECRET_KEY, else the one generated once into var/secret_key."""
    if environ.get("TGD_SECRET_KEY"):
        return environ["TGD_SECRET_KEY"]
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    if not var_dir.exists():
        var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(var_dir, 0o700)  # mkdir's mode is masked by the umask
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def _int(environ, name: str, default: int, minimum: int) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _flag(environ, name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


def _release_pubs(environ) -> str:
    """TGD_RELEASE_PUBS: the release public keys (64 hex digits each, comma-separated)."""
    raw = environ.get("TGD_RELEASE_PUBS", "")
    for item in filter(None, (p.strip() for p in raw.split(","))):
        if len(item) != 64 or any(c not in "0123456789abcdefABCDEF" for c in item):
            raise SettingsError("TGD_RELEASE_PUBS: each release public key is the 64 hex digits "
                                f"of a release.pub, comma-separated; got {item[:20]!r}")
    return raw


def from_environment(environ=None) -> dict:
    """The Flask config keys (TGD_*) the server reads, with their defaults."""
    environ = os.environ if environ is None else environ
    var_dir = _var_dir(environ)
    database_url = environ.get("TGD_DATABASE_URL") or f"sqlite:///{var_dir / 'tgd.sqlite3'}"
    secure = _flag(environ, "TGD_SECURE_COOKIES", True)
    return {
        "TGD_VAR_DIR": str(var_dir),
        "TGD_DATABASE_URL": database_url,
        "SECRET_KEY_LOADER": lambda: _secret_key(var_dir, environ),
        "TGD_TILE_URL": environ.get("TGD_TILE_URL", ""),
        "TGD_POSITION_RETENTION_DAYS": _int(environ, "TGD_POSITION_RETENTION_DAYS", 365, 1),
        # Reverse proxies in front of the server whose X-Forwarded-For is trusted (0: none).
        "TGD_PROXY_COUNT": _int(environ, "TGD_PROXY_COUNT", 0, 0),
        "TGD_SECURE_COOKIES": secure,
        "SESSION_COOKIE_SECURE": secure,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Strict",
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        # Over-the-air releases are accepted when signed by one of these (issue 17).
        "TGD_RELEASE_PUBS": _release_pubs(environ),
    }
