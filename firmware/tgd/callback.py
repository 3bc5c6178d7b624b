# Police call-back (docs/firmware.md "Police call-back"): what to do with a ringing
# call, decided when its caller id arrives (`+CLIP`, after each RING; App._on_clip).
#
#   - the alarm's own call is up (dialing, alerting, active): nothing (AT+CHUP would
#     end that call too);
#   - a number of `police_numbers` while an alarm is open or for callback_window_s
#     after it ended, a reboot in between too (the end time from the journal,
#     App._setup; counted from the boot while a time is unknown): ATA at once, then
#     the alarm call's discreet audio (speaker level 0 and muted, microphone on);
#     nothing rings or vibrates;
#   - any other caller, a withheld number, or any call outside the window: AT+CHUP
#     (the line stays free for the police; an aggressor calling her is never answered).
# A RING without +CLIP (caller id off) never reaches this module: it is not answered.
import time

from tgd.modem.atparse import split_fields, unquote
from tgd.modem.errors import AtTimeout, ModemError

_CALL_UP = ("dialing", "alerting", "active")
_CHECK_MS = 20000  # during the call: AT+CLCC this often, in case its end URC was lost


def caller(line):
    """`+CLIP: "<number>",<type>,,,"",0` -> the number without spaces ("" when withheld)."""
    try:
        return unquote(split_fields(line[line.find(":") + 1:].strip())[0]).replace(" ", "")
    except Exception:  # noqa: BLE001 - a malformed line is an unknown caller
        return ""


def in_window(app):
    """An alarm is open, or ended less than callback_window_s ago, before a reboot too."""
    alarm = app.alarm
    if alarm is not None and alarm.is_open:
        return True
    if app.alarm_end is None:
        return False
    ticks, t = app.alarm_end  # after a reboot: the boot's ticks, the journal's end time
    window = app.dev.cfg["callback_window_s"]
    now = app.dev.clock.now()
    if t is not None and now is not None:
        return now - t < window  # a clock behind the end time: answered
    # No end time or no clock yet: ticks since the end, or since the boot for an end
    # before it (at least that long ago: the police may get answered too long, never
    # hung up on).
    return time.ticks_diff(time.ticks_ms(), ticks) < app.timing.s(window)


async def handle(app, line):
    dev = app.dev
    modem = dev.modem
    try:
        if modem.call_state in _CALL_UP:
            return
        number = caller(line)
        if number and number in dev.cfg["police_numbers"] and in_window(app):
            await _answer(app, number)
        else:
            dev.log.event("CALLBACK", number=number or "none", action="rejected")
            await modem.hangup()
    except ModemError as e:
        dev.log.error("callback", e)
    finally:
        app.ringing = None


async def _answer(app, number):
    dev = app.dev
    at = dev.modem.at
    end = at.urc_waiter("VOICE CALL: END")  # before ATA; a waiter also keeps DTR low
    try:
        await at.send("ATA", timeout_ms=20000)
        dev.log.event("CALLBACK", number=number, action="answered")
        await dev.modem.discreet_audio()  # as for the alarm's call: the speaker stays silent
        alarm = app.alarm if app.alarm is not None and app.alarm.is_open else None
        if alarm is not None:
            alarm.on_callback("active")
        await _until_ended(at, end)
        dev.log.event("CALLBACK", number=number, action="ended")
        if alarm is not None and alarm.is_open:
            alarm.on_callback("ended")
    finally:
        end.cancel()


async def _until_ended(at, end):
    # `end` was registered before ATA; UrcWaiter.wait unregisters it, whatever the outcome.
    try:
        while True:
            try:
                await end.wait(_CHECK_MS)
                return
            except AtTimeout:
                pass
            except ModemError:  # the modem rebooted: the call went with it
                return
            end = at.urc_waiter("VOICE CALL: END")
            try:
                lines = await at.send("AT+CLCC")
            except ModemError:
                continue
            up = False
            for x in lines:
                up = up or isinstance(x, str) and x.startswith("+CLCC:")
            if not up:
                return
    finally:
        end.cancel()
