"""Audit rows for what a console page shows, one row per object (case, alarm, position).

A page the operator opens is always recorded. The live refreshes of that page (every
event, every minute) show the same objects again and again: within `window_s` the same
(user, action, object) is recorded once per process, so the log says who saw what and
when, without millions of identical rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from flask import current_app

from ..auth import audit_many
from ..models import User

DEFAULT_WINDOW_S = 300.0
_MAX_ENTRIES = 50_000


class RecentViews:
    """Which (user, action, type, id) were recorded lately. Pure, with an injectable clock."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[tuple, float] = {}
        self._lock = threading.Lock()

    def fresh(self, user_id: int, action: str, object_type: str, ids: Iterable) -> list[str]:
        """The ids not recorded within the window; marks them recorded now."""
        now = self._clock()
        out = []
        with self._lock:
            if len(self._seen) > _MAX_ENTRIES:
                self._seen = {k: t for k, t in self._seen.items() if now - t < self.window_s}
            for object_id in ids:
                key = (user_id, action, object_type, str(object_id))
                last = self._seen.get(key)
                if last is None or now - last >= self.window_s:
                    self._seen[key] = now
                    out.append(str(object_id))
        return out


def _recent_views() -> RecentViews:
    """One per app (tests and several apps in a process never share it)."""
    views = current_app.extensions.get("tgd_console_recent_views")
    if views is None:
        views = RecentViews(current_app.config.get("TGD_AUDIT_REFRESH_WINDOW_S", DEFAULT_WINDOW_S))
        current_app.extensions["tgd_console_recent_views"] = views
    return views


def record_shown(user: User, action: str, object_type: str, ids: Iterable,
                 detail: str = "", refresh: bool = False) -> None:
    """Audit that `user` was shown these objects; a live `refresh` is de-duplicated."""
    ids = [str(i) for i in ids]
    recent = _recent_views().fresh(user.id, action, object_type, ids)
    if refresh:
        ids = recent  # an opened page is always recorded; its refreshes only when not recently
    audit_many(user, action, object_type, ids, detail=detail)
