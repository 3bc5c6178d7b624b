"""Mosquitto accounts: the bridge's, and one per handset with a password derived from its key.

Two namespaces that cannot meet: service accounts are the user names starting with
`tgd-` (topics.is_service_account), device accounts are the device ids, and a
device id in the service namespace (registered before the rule, or written into
the database by hand) is skipped with a warning: it never replaces the bridge's
entry.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import select

from .. import db
from ..models import Device
from . import topics

log = logging.getLogger("tgd.mqtt")


def device_accounts() -> list[tuple[str, str]]:
    """(user, password) of every active device outside the service namespace."""
    with db.session_factory()() as session:
        devices = session.scalars(select(Device).where(Device.retired_at.is_(None))).all()
        pairs = []
        for device in devices:
            if topics.is_service_account(device.id):
                log.warning("device %s has a reserved name: no MQTT account written", device.id)
                continue
            pairs.append((device.id, topics.device_password(device.key_hex)))
    return pairs


def service_accounts(bridge_password: str | None, bridges: int = 1) -> list[tuple[str, str]]:
    """The bridge accounts (tgd-bridge, tgd-bridge-2 ...), when a password is given."""
    if not bridge_password:
        return []
    return [(topics.bridge_user(k), bridge_password) for k in range(bridges)]


def accounts(bridge_password: str | None, bridges: int = 1) -> list[tuple[str, str]]:
    return service_accounts(bridge_password, bridges) + device_accounts()


def write_password_file(path: str, bridge_password: str | None, bridges: int = 1) -> int:
    """Write a Mosquitto password file (hashed by mosquitto_passwd) atomically."""
    pairs = accounts(bridge_password, bridges)
    users = [user for user, _ in pairs]
    if len(set(users)) != len(users):  # cannot happen with the namespaces; never write one
        raise ValueError("two accounts with the same user name")
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
