# Entry point: pick the board, run the app, and never stop. An exception is logged,
# followed by a growing pause, then the app starts again (no crash loop that would
# hammer the modem or the flash).
import sys

import asyncio


def frozen_modules_first():
    """On a PC: import the firmware from the VM's frozen modules, as a board does.

    `micropython firmware/main.py` puts this script's folder first on sys.path, so
    the .py files next to it would be imported (compiled into the heap) instead of
    the frozen bytecode that the ESP32-faithful VM (`make esp32-vm`) runs in place,
    as an ESP32 image does. With ".frozen" first they are found only where nothing
    is frozen: on the PyPI port, whose heap figures mean nothing anyway. The host
    board's own modules (firmware/host/, frozen into the VM) come last.
    """
    if ".frozen" in sys.path:
        sys.path.remove(".frozen")
    sys.path.insert(0, ".frozen")
    sys.path.append((__file__.rsplit("/", 1)[0] if "/" in __file__ else ".") + "/host")


def make_board():
    if sys.platform == "linux":
        from board_host import HostBoard
        return HostBoard()
    name = "lilygo"
    try:
        with open("/board.txt") as f:
            name = f.read().strip() or name
    except OSError:
        pass
    if name == "generic":
        from board_generic import GenericBoard
        return GenericBoard()
    from board_lilygo import LilygoBoard
    return LilygoBoard()


def boot_slot(board):
    """Once per boot, before the firmware is imported: the update slot to run
    (otaslot.py, docs/firmware.md "Updates over the air"); its folder goes first on
    sys.path, ahead of the frozen (factory) modules. -> True on a new slot's trial boot."""
    root = board.mount_flash()
    try:
        __import__("os").stat(root + "/ota")
    except OSError:
        return False  # never updated: the factory firmware, nothing imported for it
    import otaslot
    st, path, trial = otaslot.boot(root)
    try:
        __import__("os").stat(root + "/ota/park.json")
        from otarun import check_parked  # an offer checked with the heap empty
        check_parked(root)
    except OSError:
        pass
    if path is not None:
        sys.path.insert(0, path)
    board.update_reset = bool(st["rst"])  # a hold begun during that reset counts (button.py)
    return trial


def trial_failed(board):
    """A new slot that crashes before its self-test confirmed it: back to the old one."""
    import otaslot
    root = board.mount_flash()
    if otaslot.load(root)["trial"] is not None:
        otaslot.fail(root, "selftest_failed")
        board.reset()


def main():
    probe = None
    if sys.platform == "linux":
        frozen_modules_first()
        if __import__("os").getenv("TGD_HEAP_PROBE"):  # tools/heap_probe.py
            from heap_probe import HeapProbe  # host only: frozen into the VM alone
            probe = HeapProbe(__import__("os").getenv("TGD_HEAP_PROBE"))
    import gc
    import time
    board = None
    trial = False
    try:
        board = make_board()
        trial = boot_slot(board)
    except Exception:  # noqa: BLE001 - the loop below makes the board again and logs why
        board = None
    from log import Log
    log = Log() if board is None else Log(level=board.log_level())
    pause_ms = 1000
    while True:
        started = time.ticks_ms()
        try:
            if board is None:
                board = make_board()
                log = Log(level=board.log_level())
            from app import App
            if probe is not None:
                probe.start()  # a sampling task in the app's event loop
            asyncio.run(App(board, log).run())
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - log it and start again
            log.error("main", e)
            try:
                sys.print_exception(e)
            except Exception:  # noqa: BLE001
                pass
            if trial and board is not None:
                trial = False
                trial_failed(board)
        asyncio.new_event_loop()
        gc.collect()
        if time.ticks_diff(time.ticks_ms(), started) > 600000:
            pause_ms = 1000  # it ran for a while: not a loop
        time.sleep_ms(pause_ms)
        pause_ms = min(pause_ms * 2, 60000)


if __name__ == "__main__":
    main()
