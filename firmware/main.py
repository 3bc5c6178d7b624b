# Entry point: pick the board, run the app, and never stop. An exception is logged,
# followed by a growing pause, then the app starts again (no crash loop that would
# hammer the modem or the flash).
#
# The imports inside the functions are not there for memory: the board's module
# exists on its own port only (board_host on a PC, boards.* on an ESP32), and on a PC
# the firmware is imported only once frozen_modules_first() has chosen which copy.
import gc
import sys
import time

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
        from boards.generic import GenericBoard
        return GenericBoard()
    from boards.lilygo import LilygoBoard
    return LilygoBoard()


def boot_slot(board):
    """Once per boot, before the app is imported: the update slot to run
    (tgd/ota/slot.py, docs/firmware.md "Updates over the air"); its modules are loaded
    over the frozen (factory) ones (tgd/ota/overlay.py: a slot folder first on sys.path
    would hide every frozen tgd module the release left out). -> True on a new slot's
    trial boot. The update modules are let go before the app starts (tgd.ota.unload)."""
    root = board.mount_flash()
    try:
        __import__("os").stat(root + "/ota")
    except OSError:
        return False  # never updated: the factory firmware, nothing imported for it
    from tgd import ota
    try:
        return _boot_slot(board, root)
    finally:
        ota.unload()


def _boot_slot(board, root):
    from tgd.ota import slot as slots
    st, path, trial = slots.boot(root)
    board.update_reset = bool(st["rst"])  # a hold begun during that reset counts (button.py)
    if path is not None:
        from tgd.ota import overlay
        try:
            overlay.load(path)
        except Exception as e:  # noqa: BLE001 - never run half a slot
            if trial:  # the new slot cannot even load: back to the old one at once
                slots.fail(root, "selftest_failed")
                board.reset()
            # a confirmed slot that no longer loads (its files damaged): overlay.load put
            # the frozen modules back; this boot runs the factory firmware, whole
            from tgd.log import Log
            Log().event("OTA", res="rolled_back", why="slot_load:" + type(e).__name__, slot=st["boot"])
            slots.set_result(root, "rolled_back", st["ver"])
    try:
        __import__("os").stat(root + "/ota/park.json")
    except OSError:
        return trial
    from tgd.ota.run import check_parked  # an offer checked with the heap empty, by
    check_parked(root, board)  # the running slot's modules (its FW_VERSION)
    return trial


def trial_failed(board):
    """A new slot that crashes before its self-test confirmed it: back to the old one."""
    from tgd.ota import slot as slots
    root = board.mount_flash()
    if slots.load(root)["trial"] is not None:
        slots.fail(root, "selftest_failed")
        board.reset()


def main():
    probe = None
    if sys.platform == "linux":
        frozen_modules_first()
        if __import__("os").getenv("TGD_HEAP_PROBE"):  # tools/heap_probe.py
            from heap_probe import HeapProbe  # host only: frozen into the VM alone
            probe = HeapProbe(__import__("os").getenv("TGD_HEAP_PROBE"))
    board = None
    trial = False
    try:
        board = make_board()
        trial = boot_slot(board)
    except Exception:  # noqa: BLE001 - the loop below makes the board again and logs why
        board = None
    from tgd.log import Log
    log = Log() if board is None else Log(level=board.log_level())
    pause_ms = 1000
    while True:
        started = time.ticks_ms()
        try:
            if board is None:
                board = make_board()
                log = Log(level=board.log_level())
            from tgd.app import App  # in the loop: a failed import is retried like any failure
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
