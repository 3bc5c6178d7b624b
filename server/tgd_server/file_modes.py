"""Owner-only files: the SQLite database holds device keys, cases and positions.

`prepare_sqlite_file` creates var/ (0700) and the database file (0600) before SQLite
opens it; SQLite gives its -wal and -shm files the database file's mode. Whatever
the umask. Existing files keep their modes (an administrator's choice), but
`warn_if_wider` logs a warning at start-up for each one group or others can use.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("tgd.files")

DIR_MODE = 0o700
FILE_MODE = 0o600
_SIDE_FILES = ("-wal", "-shm", "-journal")


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or :memory:)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def prepare_sqlite_file(path: Path) -> None:
    """Create the folder (0700) and the empty database file (0600) if they are missing."""
    if not path.parent.exists():
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path.parent, DIR_MODE)  # mkdir's mode is masked by the umask
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.fchmod(fd, FILE_MODE)
    os.close(fd)


def wider_than_owner(path: Path) -> int | None:
    """The group/other permission bits of `path` (None if it does not exist or has none)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    return mode if mode & 0o077 else None


def warn_if_wider(database_url: str, var_dir: str | None = None) -> list[str]:
    """Log a warning for each of var/, the database and its WAL/SHM files that group or
    others can read; returns the warnings."""
    paths: list[Path] = []
    if var_dir:
        paths.append(Path(var_dir))
    db_file = sqlite_path(database_url)
    if db_file is not None:
        paths += [db_file.parent, db_file] + [Path(f"{db_file}{s}") for s in _SIDE_FILES]
    warnings, seen = [], set()
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        mode = wider_than_owner(path)
        if mode is not None:
            fix = DIR_MODE if path.is_dir() else FILE_MODE
            message = (f"{path} has mode {mode:o}: it holds device keys, cases and positions; "
                       f"chmod {fix:o} {path}")
            log.warning(message)
            warnings.append(message)
    return warnings
