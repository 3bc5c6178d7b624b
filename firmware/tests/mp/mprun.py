# Test runner that runs INSIDE the MicroPython VM.
# Usage: micropython -X heapsize=64k mprun.py mpt_something [test_name ...]
# Imports the module, runs every test_* function (coroutines through asyncio),
# and prints one line per test: "PASS name", "FAIL name" (followed by the
# exception) or "SKIP name reason". The pytest side (conftest.py) parses them.
import sys
import gc

try:
    import asyncio
except ImportError:
    asyncio = None


class Skip(Exception):
    pass


def _run_one(fn):
    res = fn()
    if res is not None and hasattr(res, "send") and asyncio is not None:
        asyncio.run(res)
        asyncio.new_event_loop()


def main(argv):
    modname = argv[1]
    wanted = argv[2:]
    mod = __import__(modname)
    names = [n for n in dir(mod) if n.startswith("test_")]
    names.sort()
    for name in names:
        if wanted and name not in wanted:
            continue
        gc.collect()
        try:
            _run_one(getattr(mod, name))
        except Skip as e:
            print("SKIP", name, e)
        except Exception as e:  # noqa: BLE001 - report every failure
            print("FAIL", name)
            sys.print_exception(e)
            print("ENDFAIL", name)
        else:
            print("PASS", name)
    print("DONE")


main(sys.argv)
