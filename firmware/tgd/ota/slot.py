# The update slots in the flash (route "mpy"; docs/firmware.md "Updates over the air").
#
# <root>/ota/a/ and <root>/ota/b/ each hold a .mpy set that overlays the frozen factory
# firmware: main.py puts the booted slot's folder first on sys.path, so a module in
# it replaces the frozen one and every other module stays the factory's. Slot "a"
# with no folder is the factory firmware. <root>/ota/state.json (written to a
# temporary file, then renamed over: atomic on littlefs and POSIX):
#   {"active":"a","trial":"b"|null,"tried":0|1,"res":"ok",...,"ver":"1.1.0","boot":"b"}
# trial: a slot written and switched to, not yet confirmed by its boot self-test. The
# first boot of a trial sets tried=1; a boot that finds tried=1 rolls back (the trial
# never confirmed: it crashed, hung or lost power before its self-test passed).
import json
import os

_DEFAULT = {"active": "a", "trial": None, "tried": 0, "res": None, "ver": None, "boot": "a",
            "rst": 0, "park": None}


def _dir(root):
    return root + "/ota"


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass  # already there


def is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def load(root):
    st = dict(_DEFAULT)
    try:
        with open(_dir(root) + "/state.json") as f:
            raw = json.load(f)
        if isinstance(raw, dict):
            for k in _DEFAULT:
                if k in raw:
                    st[k] = raw[k]
    except (OSError, ValueError):
        pass  # never updated (or a torn write of the tmp file: state.json is intact)
    if st["active"] not in ("a", "b"):
        st["active"] = "a"
    if st["trial"] not in ("a", "b", None) or st["trial"] == st["active"]:
        st["trial"] = None
    return st


def save(root, st):
    d = _dir(root)
    _mkdir(d)
    with open(d + "/state.tmp", "w") as f:
        f.write(json.dumps(st))
    os.rename(d + "/state.tmp", d + "/state.json")


def inactive(st):
    return "b" if st["active"] == "a" else "a"


def slot_dir(root, slot):
    return _dir(root) + "/" + slot


def boot(root):
    """Once per boot, before the firmware is imported: (state, folder to put first on
    sys.path or None, trial). Rolls a trial that already had its boot back. st["rst"]:
    this boot follows the firmware's own reset for an update (a switch or a roll-back)."""
    st = load(root)
    if not is_dir(_dir(root)):
        return st, None, False  # never updated: the factory firmware, nothing written
    rst = st["rst"]
    st["rst"] = 0
    trial = False
    if st["trial"] is not None:
        if st["tried"]:
            st["res"] = "rolled_back"
            st["trial"] = None
        else:
            st["tried"] = 1
            trial = True
    slot = st["trial"] or st["active"]
    st["boot"] = slot
    save(root, st)
    st["rst"] = rst
    path = slot_dir(root, slot)
    return st, (path if is_dir(path) else None), trial


def arm(root, slot, version):
    """Switch: the next boot runs `slot` on trial."""
    st = load(root)
    st["trial"] = slot
    st["tried"] = 0
    st["ver"] = version
    st["rst"] = 1
    save(root, st)


def confirm(root):
    """The trial's self-test passed: it is the active slot from now on."""
    st = load(root)
    if st["trial"] is not None:
        st["active"] = st["trial"]
    st["trial"] = None
    st["res"] = "ok"
    save(root, st)
    return st


def fail(root, res):
    """The trial failed (self-test, crash): the next boot runs the active slot."""
    st = load(root)
    st["trial"] = None
    st["res"] = res
    st["rst"] = 1
    save(root, st)
    return st


def set_park(root, version):
    """An offer of `version` parked for a check at the next boot (tgd/ota/run.py: once)."""
    st = load(root)
    st["park"] = version
    save(root, st)
    return st


def mark_reset(root):
    """The next boot follows the firmware's own reset (button.py: a hold counts)."""
    st = load(root)
    st["rst"] = 1
    save(root, st)


def set_result(root, res, version):
    st = load(root)
    if st["res"] != res or st["ver"] != version:
        st["res"] = res
        st["ver"] = version
        save(root, st)
    return st


def clear_dir(path):
    """Remove a folder and what it holds (a slot about to be rewritten)."""
    if not is_dir(path):
        return
    for name in os.listdir(path):
        p = path + "/" + name
        if is_dir(p):
            clear_dir(p)
        else:
            os.remove(p)
    os.rmdir(path)
