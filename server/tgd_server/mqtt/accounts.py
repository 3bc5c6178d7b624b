"""Mosquitto accounts: the bridge, and one per handset with a password derived from its key."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import select

from .. import db
from ..models import Device
from . import topics
from .bridge import BRIDGE_USER


def accounts(bridge_password: str | None) -> list[tuple[str, str]]:
    """(user, password) of every active device, and of the bridge when given."""
    with db.session_factory()() as session:
        devices = session.scalars(select(Device).where(Device.retired_at.is_(None))).all()
        pairs = [(d.id, topics.device_password(d.key_hex)) for d in devices]
    if bridge_password:
        pairs.insert(0, (BRIDGE_USER, bridge_password))
    return pairs


def write_password_file(path: str, bridge_password: str | None) -> int:
    """Write a Mosquitto password file (hashed by mosquitto_passwd) atomically."""
    pairs = accounts(bridge_password)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".passwd-")
    os.close(fd)
    try:
        os.unlink(tmp)  # mosquitto_passwd -c creates it
        for index, (user, password) in enumerate(pairs):
            flags = ["-c"] if index == 0 else []
            subprocess.run(["mosquitto_passwd", *flags, "-b", tmp, user, password],
                           check=True, capture_output=True)
        if not pairs:
            Path(tmp).write_text("")
        os.chmod(tmp, 0o640)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(pairs)
