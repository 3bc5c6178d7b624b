# heapsize: 192k
# (the tests import the sources, compiled inside the VM)
# Found by the campaign (seed 10, i17-campaign, an updated handset at 48 KB): a
# MemoryError inside log.error, called by the handlers that keep the button loop, the AT
# reader and the alarm's channels alive, killed all three; her next hold dialled nothing.
# A log line that cannot be made is now counted and said with the next one.
import asyncio

from mpt_app import FakeBoard, Handset, wipe
from tgd.log import Log


def test_a_line_that_cannot_be_made_never_raises_and_is_said_later():
    lines = []
    failing = [True]

    def sink(line):
        if failing[0]:
            raise MemoryError("memory allocation failed")
        lines.append(line)

    log = Log(sink=sink, ticks_ms=lambda: 5)
    log.error("button", OSError(5))
    log.event("BUTTON", state="down")
    failing[0] = False
    log.event("READY")
    assert lines == ["5 LOG_DROPPED n=2", "5 READY"], lines


class BrokenInput(FakeBoard):
    broken = False

    def button_pressed(self):
        if self.broken:
            raise OSError(5)
        return self.pressed


async def test_the_button_loop_outlives_a_fault_whose_log_line_does_not_fit():
    wipe()
    h = Handset(board=BrokenInput())
    await h.until(lambda: "READY" in h.names(), "READY")
    log = h.app.log
    keep = log._sink

    def out_of_memory(line):
        raise MemoryError("memory allocation failed")

    log._sink = out_of_memory
    h.board.broken = True  # the button loop's handler logs it: that line cannot be made
    await asyncio.sleep_ms(1200)
    h.board.broken = False
    log._sink = keep
    await asyncio.sleep_ms(1200)  # the loop's pause after a broken input
    await h.hold(2400)
    await h.until(lambda: "DIAL" in h.names(), "DIAL after the fault")
    assert "LOG_DROPPED" in h.names(), h.lines[-10:]
    h.stop()


async def test_a_beat_that_runs_out_of_heap_does_not_end_the_heartbeats():
    # seed 10 again: the heartbeat task died of a MemoryError in message.build, and with
    # it every later heartbeat (the app starts a new task only after an alarm)
    from tgd import message
    from fake_modem import FakeModem
    wipe(heartbeat_interval_s=60)
    build = message.build
    calls = [0]

    def out_of_memory_once(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 1:
            raise MemoryError("memory allocation failed")
        return build(*args, **kwargs)

    message.build = out_of_memory_once
    try:
        modem = FakeModem()
        h = Handset(modem=modem)
        await h.until(lambda: any("where=heartbeat" in ln for ln in h.lines), "the error")
        await h.until(lambda: "HEARTBEAT" in h.names() and modem.posts, "a heartbeat after it",
                      20000)
        h.stop()
    finally:
        message.build = build
