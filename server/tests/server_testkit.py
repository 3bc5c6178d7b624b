"""Helpers shared by the server tests and their conftest.

Test modules import from here, never `from conftest import ...`: every test
folder of the project has a conftest.py, and under pytest's default import mode
only one module can be called `conftest`.
"""

PASSWORD = "correct horse battery"


def csrf_token(page: str) -> str:
    """The CSRF token of the first form of a console page ("" when there is none)."""
    marker = 'name="csrf_token" value="'
    start = page.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    return page[start:page.find('"', start)]
