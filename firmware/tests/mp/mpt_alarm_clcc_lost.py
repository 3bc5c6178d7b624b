# heapsize: 192k
# (the tests import the sources, compiled inside the VM)
# Found by the campaign (seed 11, i12-campaign): the AT+CLCC the call channel sends before
# it dials got no answer (the modem was still waking up), and the dial waited for the AT
# engine's 5 s timeout: the police were called 5 s late. A lost AT+CLCC now costs at most
# 0.5 s before the dial goes (the firmware's own timeout for that AT+CLCC).
import asyncio
import time

from tgd.modem.errors import AtTimeout
from fake_modem import FakeModem
from mpt_alarm import Rig, wipe


class LosingModem(FakeModem):
    """The first AT+CLCC gets no answer: the AT engine waits its timeout, then gives up."""

    lost = 1

    async def call_list(self, timeout_ms=5000):
        if self.lost:
            self.lost -= 1
            self.calls.append("call_list")
            await asyncio.sleep_ms(timeout_ms)
            raise AtTimeout([])
        return await FakeModem.call_list(self, timeout_ms)


async def test_a_lost_clcc_before_the_dial_holds_it_back_half_a_second_at_most():
    wipe()
    modem = LosingModem()
    rig = Rig(modem)
    t0 = time.ticks_ms()
    rig.trigger()
    await rig.until(lambda: "dial" in modem.calls, "the dial", limit_ms=6000)
    waited = time.ticks_diff(time.ticks_ms(), t0)
    assert waited < 900, waited
    assert modem.calls.index("call_list") < modem.calls.index("dial"), modem.calls
    assert any("where=clcc" in ln for ln in rig.lines), rig.lines[-10:]
    rig.power_cut()
