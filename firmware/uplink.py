# Signed device messages to the server over the modem's HTTP client (or its MQTT
# client, mqtt_uplink.py, when config.json says so): one attempt per `post`;
# `deliver` retries with backoff until a 2xx answer with ok:true.
import asyncio

import limits
import message
from errors import ModemError


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
        mqtt = getattr(dev, "mqtt", None)  # mqtt_uplink.MqttLink when transport is mqtt
        sent = await mqtt.exchange(mtype, seq, body, signature) if mqtt is not None else None
        if sent is not None:
            status, answer = sent
        else:  # HTTP, or the fallback of an alarm whose broker cannot be reached
            try:
                status, data = await dev.modem.http_post(
                    cfg["server_url"], body, "X-TGD-Signature: " + signature,
                    dev.timing.data_timeout_ms)
            except ModemError as e:
                dev.log.event("DATA", type=mtype, seq=seq, status="timeout", what=type(e).__name__)
                return None, None
            answer = message.parse_answer(data) if data else None
            dev.log.event("DATA", type=mtype, seq=seq, status=status)
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


def take_commands(dev, answer):
    """Carry out the commands in a server answer (docs/protocol.md "The answer").

    `locate`: the caller sends a position now (returns True). `config`: the settable
    keys are validated like config.json and applied in memory (a reboot returns to
    the provisioned file). The last id carried out goes back in `cmd`.
    """
    cmds = answer.get("cmds") if answer else None
    if not isinstance(cmds, list):
        return False
    locate = False
    for c in cmds:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int):
            continue
        kind = c.get("type")
        if kind == "locate":
            locate = True
        elif kind == "config":
            limits.apply_config(dev, c.get("set"))
        else:
            dev.log.event("ERROR", where="command", what="unknown_type")
        dev.last_cmd = c["id"]
    return locate
