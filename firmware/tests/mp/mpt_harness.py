# Self-test of the MicroPython test harness: proves it runs in the VM and can fail.
import sys


def test_runs_on_micropython():
    assert sys.implementation.name == "micropython"


async def test_coroutines_are_awaited():
    import asyncio
    await asyncio.sleep_ms(1)
