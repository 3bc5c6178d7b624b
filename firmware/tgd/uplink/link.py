# Signed device messages to the server, whatever the transport: the modem's HTTP
# client (http.py), or its MQTT client (mqtt.py) when config.json says so. One
# attempt per `post`; `deliver` retries with backoff until a 2xx answer with ok:true.
import asyncio

from tgd import message
from tgd.uplink import http


class Uplink:
    def __init__(self, dev):
        self._dev = dev
        self.last_seq = None

    async def post(self, mtype, snap):
        """One attempt. Returns (status, answer); status None when the modem failed."""
        dev = self._dev
        cfg = dev.cfg
        seq = snap.get("seq") or dev.journal.next_seq()
        self.last_seq = seq
        try:
            body = message.build(mtype, cfg["device_id"], seq, dev.clock.now(), dev.fw,
                                 snap.get("fix"), snap.get("cell"), snap.get("bat"),
                                 snap.get("csq"), aid=snap.get("aid"), at=snap.get("at"),
                                 call=snap.get("call"), sms=snap.get("sms"), cmd=snap.get("cmd"),
                                 press=snap.get("press"), ota=snap.get("ota"))
        except message.MessageError as e:
            dev.log.error("message", e)
            return None, None
        signature = message.sign(cfg["key"], body)
        mqtt = getattr(dev, "mqtt", None)  # mqtt.MqttLink when transport is mqtt
        sent = await mqtt.exchange(mtype, seq, body, signature) if mqtt is not None else None
        if sent is None:  # HTTP, or the fallback of an alarm whose broker cannot be reached
            sent = await http.exchange(dev, mtype, seq, body, signature)
        status, answer = sent
        if status == 409 and answer is not None:
            dev.journal.jump_seq(answer.get("seq_floor"))
        return status, answer

    async def deliver(self, mtype, snapshot, wanted, backoff_ms, first_seq=None):
        """Send until delivered. `snapshot()` builds fresh fields for every attempt;
        `wanted()` false stops trying. Returns the answer, or None when given up."""
        first, cap = backoff_ms
        delay = first
        seq = first_seq
        conflicts = 0
        while wanted():
            snap = snapshot()
            snap["seq"] = seq
            seq = None  # a retry is a new message with a new seq
            status, answer = await self.post(mtype, snap)
            if status is not None and message.answer_ok(status, answer):
                return answer
            if status == 409 and conflicts < 3:
                conflicts += 1  # our counter was behind: jump and resend at once
                await asyncio.sleep_ms(10)
                continue
            if status is not None and 400 <= status < 500:
                delay = cap  # the server refuses: it may be fixed while the alarm is open
            await asyncio.sleep_ms(delay)
            delay = min(delay * 2, cap)
        return None

