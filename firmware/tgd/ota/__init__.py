# Updates over the air (docs/firmware.md "Updates over the air"): what stays in the heap.
#
# This package's own module is all an update keeps between heartbeats: the offer of the
# last heartbeat answer, the report the heartbeats carry, and `step`, which imports the
# modules that do the work (tgd.ota.offer, .slot, .run; tgd.crypto on an offer) for one
# step and lets them go after it. Imported, offer+slot+run hold 1,952 bytes of heap and
# the Ed25519 code 1,040 more; 128 bytes stay after unload() (ESP32-faithful VM, 48 KB,
# gc.mem_alloc() around the imports, frozen modules). With them resident, a 600-byte
# answer during an alarm ran the AT reader out of heap (MemoryError where=at_rx, a
# position lost: test_rig_ota_update.py::test_an_offer_during_an_alarm_is_deferred failed
# 3 times in at most 13 runs): the alarm never pays for updates. An alarm cancels the heartbeat's task,
# and with it a step under way; its `finally` lets the modules go.
import sys

# the modules a step imports; never the running slot's own (loaded from its folder at
# boot by tgd/ota/overlay.py: they are the firmware now, and a new import would be the
# frozen, older one)
_WORKERS = ("tgd.ota.run", "tgd.ota.offer", "tgd.ota.slot", "tgd.ota.overlay",
            "tgd.crypto.ed25519", "tgd.crypto.sha512", "tgd.crypto")


def unload():
    """Let the update modules go (main.py after the boot's slot decision, and after each
    step). Measured above: it pays 1.8 to 2.9 KB back."""
    for full in _WORKERS:
        mod = sys.modules.get(full)
        if mod is None:
            continue
        path = getattr(mod, "__file__", "")
        if "/ota/a/" in path or "/ota/b/" in path:
            continue  # a slot's module: the running firmware
        del sys.modules[full]
        parent, name = full.rsplit(".", 1)
        pkg = sys.modules.get(parent)
        if pkg is not None and name in pkg.__dict__:
            delattr(pkg, name)


def report(state):
    """The heartbeat's `ota` object from tgd/ota/slot.py's state, or None (never offered an
    update: the field is left out, the server accepts its absence)."""
    if not state or not state.get("res"):
        return None
    return {"slot": state.get("boot") or "a", "res": state["res"], "ver": state.get("ver") or ""}


class Updates:
    """The app's updates (dev.ota): a few hundred bytes between heartbeats."""

    def __init__(self, app):
        self.app = app
        self.new = None  # `update` of the last heartbeat answer, for the next step
        self.seen = None  # SHA-256 of the manifest last checked at this boot (Ed25519 once)
        self.halted = False  # the boot self-test failed: the reset comes, nothing else
        from tgd.ota import slot
        st = slot.load(app.root)
        slot = None
        unload()
        self.trial = st["trial"] is not None and st["boot"] == st["trial"]
        self.last = report(st)  # the heartbeats' `ota`; tgd.ota.run keeps it current

    def offer(self, update):
        """A heartbeat answer's `update` (never an alarm's): step() checks it."""
        if not self.trial and not self.halted:
            self.new = update

    def report(self):
        return self.last

    async def step(self):
        """After a delivered heartbeat (tgd/heartbeat.py): tgd.ota.run.Updater.step."""
        from tgd.ota.run import Updater
        try:
            await Updater(self).step()
        finally:
            Updater = None
            unload()

    async def boot_check(self):
        """A new slot's first boot: its self-test (tgd.ota.run.boot_check)."""
        from tgd.ota.run import boot_check
        try:
            await boot_check(self.app)
        finally:
            boot_check = None
            unload()
