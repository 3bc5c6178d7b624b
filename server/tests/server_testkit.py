"""Helpers shared by the server tests and their conftest.

Test modules import from here, never `from conftest import ...`: every test
folder of the project has a conftest.py, and under pytest's default import mode
only one module can be called `conftest`.
"""

import time

PASSWORD = "correct horse battery"


def wait_until(predicate, timeout: float = 10.0, poll_s: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` has passed; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())


def csrf_token(page: str) -> str:
    """The CSRF token of the first form of a console page ("" when there is none)."""
    marker = 'name="csrf_token" value="'
    start = page.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    return page[start:page.find('"', start)]
