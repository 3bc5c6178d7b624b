"""Root of the test tree: says once which MicroPython runs the firmware in this session."""

from __future__ import annotations


def pytest_report_header(config):
    try:
        from tgd_flash.micropython_vm import micropython
    except ImportError:  # the package is not installed: nothing runs the firmware
        return None
    return f"micropython: {micropython().describe()}"
