# Entry point: pick the board, run the app, and never stop. An exception is logged,
# followed by a growing pause, then the app starts again (no crash loop that would
# hammer the modem or the flash).
import sys

import asyncio


def use_compiled_modules():
    """On a PC: run the firmware as .mpy compiled by mpy-cross (see mpy_cache.py).

    The helper is imported for the call and dropped after it, so its code does not
    stay in the heap.
    """
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    import mpy_cache
    try:
        mpy_cache.use_compiled_modules(here)
    finally:
        sys.modules.pop("mpy_cache", None)


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


def main():
    import gc
    import time
    from log import Log
    log = Log()
    pause_ms = 1000
    board = None
    while True:
        started = time.ticks_ms()
        try:
            if sys.platform == "linux":
                use_compiled_modules()  # cheap when nothing changed
            if board is None:
                board = make_board()
                log = Log(level=board.log_level())
            from app import App
            asyncio.run(App(board, log).run())
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - log it and start again
            log.error("main", e)
            try:
                sys.print_exception(e)
            except Exception:  # noqa: BLE001
                pass
        asyncio.new_event_loop()
        gc.collect()
        if time.ticks_diff(time.ticks_ms(), started) > 600000:
            pause_ms = 1000  # it ran for a while: not a loop
        time.sleep_ms(pause_ms)
        pause_ms = min(pause_ms * 2, 60000)


if __name__ == "__main__":
    main()
