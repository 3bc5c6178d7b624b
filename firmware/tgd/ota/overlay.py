# A slot's modules over the frozen firmware (main.py, once per boot, before the app).
#
# A slot holds only the modules a release changes, as packages: <slot>/tgd/device.mpy
# is the module tgd.device. MicroPython looks a submodule up in ONE folder, its
# package's __path__ (py/builtinimport.c): a slot folder put first on sys.path would
# make <slot>/tgd the whole tgd package, and every module the release left out (the
# frozen ones) unimportable. So the packages stay the frozen ones, and each slot
# module is loaded here under its full name into sys.modules, where every later
# import finds it. A module that imports another slot module not loaded yet fails
# on its placeholder and is tried again after it; no progress -> the error is raised
# (a trial boot then rolls back, main.py).
#
# Not overlaid: a package's __init__ and boards/ (the board object exists before
# the slot is chosen), and a top-level module (none since the package layout).
import os
import sys

from tgd.ota.slot import is_dir


class _Pending:
    """sys.modules' entry of a slot module not loaded yet."""


def modules(slot):
    """[(full name, folder, leaf name)] of the slot's tgd modules, sorted."""
    found = []
    todo = [("tgd", slot + "/tgd")]
    while todo:
        pkg, folder = todo.pop()
        if not is_dir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = folder + "/" + name
            if is_dir(path):
                todo.append((pkg + "." + name, path))
            elif name.endswith(".mpy") and name != "__init__.mpy":
                found.append((pkg + "." + name[:-4], folder, name[:-4]))
    found.sort()
    return found


def _load(full, folder, leaf):
    parent, name = full.rsplit(".", 1)
    __import__(parent)  # the frozen package (tgd.modem...), before sys.path changes
    sys.path.insert(0, folder)
    had = sys.modules.pop(full, None)
    try:
        mod = __import__(leaf)  # a top-level name found in `folder` (sys.path[0])
    except BaseException:
        if had is not None:
            sys.modules[full] = had
        raise
    finally:
        sys.path.pop(0)
        sys.modules.pop(leaf, None)
    if not getattr(mod, "__file__", "").startswith(folder):
        raise ImportError(full)  # a built-in module of that name (e.g. esp32) came instead
    sys.modules[full] = mod
    setattr(sys.modules[parent], name, mod)  # `import tgd.x` then tgd.x.f()


def load(slot):
    """Load the slot's modules; -> their names. Raises the error of one that cannot,
    with every slot module taken out again."""
    todo = modules(slot)
    for full, _, _ in todo:
        if full not in sys.modules or not isinstance(sys.modules[full], _Pending):
            sys.modules[full] = _Pending()
    loaded = []
    while todo:
        left = []
        err = None
        for item in todo:
            try:
                _load(*item)
                loaded.append(item[0])
            except Exception as e:  # noqa: BLE001 - a slot module it needs comes later
                err = e
                sys.modules[item[0]] = _Pending()
                left.append(item)
        if len(left) == len(todo):
            # no progress: none of the slot stays (the frozen modules come back on their
            # next import): never half a release over the factory firmware
            for full in loaded + [item[0] for item in left]:
                sys.modules.pop(full, None)
                parent, name = full.rsplit(".", 1)
                pkg = sys.modules.get(parent)
                if pkg is not None and name in pkg.__dict__:
                    delattr(pkg, name)
            raise err
        todo = left
    return loaded
