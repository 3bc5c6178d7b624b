# heapsize: 192k
# (the tests import the sources, compiled inside the VM)
# Found by the campaign (seed 11, i12-campaign, under load at the rig's heap): the close
# from the server ran out of memory in Alarm.end() after the alarm had moved to ENDED
# but before ALARM_END: the alarm was neither open nor ended for real (no ALARM_END, its
# tasks and its call left running, a new hold opened a second alarm beside it). A
# failing journal write now leaves a logged error, and the alarm still ends.
from fake_modem import FakeModem, answer
from mpt_alarm import Rig, wipe


async def test_a_journal_failure_at_the_end_still_ends_the_alarm():
    wipe()
    modem = FakeModem()
    modem.http_default = answer("received")
    rig = Rig(modem)
    alarm = rig.trigger()
    await rig.until(lambda: alarm.call_state == "active", "the call up")

    def out_of_memory(*args):
        raise MemoryError("memory allocation failed")

    rig.dev.journal.end_alarm = out_of_memory
    alarm.end("closed")
    await rig.task          # run() returns: its tasks cancelled, nothing left running
    assert not alarm.is_open and alarm.end_reason == "closed"
    assert rig.events("ALARM_END"), rig.lines[-10:]
    assert any("where=alarm_end" in ln and "MemoryError" in ln for ln in rig.lines), rig.lines[-10:]
