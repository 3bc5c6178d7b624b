# The alert button: debounce, then a hold timer restarted by every press.
# Pure logic over (raw level, time): the board polls the pin every POLL_MS and
# feeds `update`. A press shorter than hold_ms, a bounce, or a contact already
# closed at boot (stuck, or held while the handset starts) never triggers, except after
# the firmware's own reset for an update (armed_at_boot): a hold begun during that
# reboot is timed from the boot.
import time

DOWN = "down"
UP = "up"
TRIGGER = "trigger"


class Button:
    DEBOUNCE_MS = 30   # a level must hold this long to count
    POLL_MS = 10

    def __init__(self, hold_ms, armed_at_boot=False):
        self.hold_ms = hold_ms
        self._armed_at_boot = armed_at_boot
        self._level = None        # debounced level, True = pressed
        self._candidate = None    # raw level waiting for the debounce period
        self._candidate_since = 0
        self._armed = False       # False until the contact has been seen open
        self._pressed_at = None   # start of the current press (raw edge time)
        self._fired = False

    @property
    def pressed(self):
        return bool(self._level)

    def update(self, raw, now):
        """Feed one sample; return DOWN, UP, TRIGGER or None."""
        raw = bool(raw)
        if self._level is None:  # first sample: take it as it is, do not arm if closed
            self._level = raw
            self._armed = not raw
            self._candidate = raw
            if raw and self._armed_at_boot:
                # the update's reset came during her hold (tgd/ota/run.py waits for a release
                # before it resets, so the hold began during the reboot): a real press
                self._armed = True
                self._pressed_at = now
                self._candidate_since = now
                return DOWN
            return None
        if raw != self._candidate:
            self._candidate = raw
            self._candidate_since = now
        if raw != self._level:
            if time.ticks_diff(now, self._candidate_since) < self.DEBOUNCE_MS:
                return None
            self._level = raw
            if raw:
                self._pressed_at = self._candidate_since
                self._fired = False
                return DOWN
            self._pressed_at = None
            self._armed = True
            return UP
        if (raw and self._armed and not self._fired and self._pressed_at is not None
                and time.ticks_diff(now, self._pressed_at) >= self.hold_ms):
            self._fired = True
            return TRIGGER
        return None
