# The MQTT transport (docs/mqtt.md): the modem's own MQTT client (AT+CMQTT*), QoS 1,
# the device's own account (user = device id, password derived from its key), the
# same signed messages as HTTP: "<64 hex signature>\n<body>" on tgd/<id>/up, the
# server's signed answer on tgd/<id>/down. Imported only when config.json says
# "transport": "mqtt" (App._setup). Uplink.post calls `exchange`.
import asyncio
import time

from micropython import const

from tgd import message
from tgd.modem.errors import AtError, AtTimeout, ModemError

_ACK_MS = const(20000)  # +CMQTTPUB / +CMQTTSUB after the OK
_KEEPALIVE_S = const(60)
_START_MS = const(15000)
_BROKER_RETRY_MS = const(60000)  # after a failed connect, alarms go by HTTP this long
_FALLBACK = ("alarm", "position")  # never heartbeats: a fleet must not flood HTTP
_REFUSALS = {"replay": 409, "out_of_window": 409, "unsigned": 401, "bad_signature": 401,
             "too_large": 413}


class MqttDown(ModemError):
    """The modem's MQTT client reported an error code (start, connect, sub, pub)."""


def _code(line):
    # "+CMQTTCONNECT: 0,30" -> 30; "+CMQTTSTART: 23" -> 23
    try:
        return int(line[line.rfind(",") + 1 if "," in line else line.find(":") + 1:])
    except (ValueError, TypeError):
        return -1


class MqttLink:
    connect_ms = 30000  # +CMQTTCONNECT after the OK (tests shorten it)

    def __init__(self, dev):
        self._dev = dev
        self._at = dev.modem.at
        me = "tgd/" + dev.cfg["device_id"]
        self._up = me + "/up"
        self._down = me + "/down"
        self._status = me + "/status"
        self.connected = False
        self._started = False
        self._unsure = False  # a CONNECT whose result never came
        self._down_until = None
        self._rx_part = None
        self._rx_topic = None
        self._rx = b""
        self._answers = []  # verified answers not yet taken
        self._got = asyncio.Event()
        self._at.on_urc("+CMQTT", self._on_urc)

    # -- incoming (the AT reader's context: record only) ---------------------------
    def _on_urc(self, item):
        if isinstance(item, bytes):  # a raw block: topic or payload
            if self._rx_part == "t":
                self._rx_topic = item
            elif self._rx_part == "p":
                self._rx += item
            return
        if item.startswith("+CMQTTRXSTART:"):
            self._rx_topic, self._rx, self._rx_part = None, b"", None
        elif item.startswith("+CMQTTRXTOPIC:"):
            self._rx_part = "t"
        elif item.startswith("+CMQTTRXPAYLOAD:"):
            self._rx_part = "p"
        elif item.startswith("+CMQTTRXEND:"):
            self._rx_part = None
            self._received(self._rx_topic, self._rx)
            self._rx = b""
        elif item.startswith("+CMQTTCONNLOST") or item.startswith("+CMQTTNONET"):
            self.connected = False
            if item.startswith("+CMQTTNONET"):
                self._started = False
            self._dev.log.event("MQTT", state="lost", why=item[6:].replace(" ", ""))

    def _received(self, topic, payload):
        log = self._dev.log
        if topic != self._down.encode():
            log.event("ERROR", where="mqtt", what="foreign_topic")
            return
        cut = payload.find(b"\n")
        body = payload[cut + 1:]
        if cut != 64 or payload[:64].decode().lower() != message.sign(self._dev.cfg["key"], body):
            log.event("ERROR", where="mqtt", what="bad_signature")
            return
        answer = message.parse_answer(body)
        if answer is None:
            log.event("ERROR", where="mqtt", what="bad_answer")
            return
        self._answers.append(answer)
        del self._answers[:-4]  # a pushed answer nobody waits for is not kept forever
        self._got.set()

    # -- one message ------------------------------------------------------------------
    async def exchange(self, mtype, seq, body, signature):
        """(status, answer) as Uplink.post gives it, or None: send it by HTTP instead."""
        dev = self._dev
        fallback = mtype in _FALLBACK
        if fallback and self._down_until is not None and time.ticks_diff(
                self._down_until, time.ticks_ms()) > 0:
            return None
        self._answers = []
        frame = signature.encode() + b"\n" + body
        try:
            was_connected = self.connected
            try:
                await self._send(frame)
            except (AtError, MqttDown):
                if not was_connected:
                    raise  # the broker refused or is unreachable: no second wait
                # A modem that rebooted (and forgot its client): connect once more, now.
                self.connected = self._started = False
                await self._send(frame)
        except ModemError as e:
            self.connected = False
            what = str(e) if isinstance(e, MqttDown) else type(e).__name__  # no password
            dev.log.event("DATA", type=mtype, seq=seq, status="mqtt_down", what=what)
            if fallback:
                retry_ms = dev.timing.ms(_BROKER_RETRY_MS)
                self._down_until = time.ticks_add(time.ticks_ms(), retry_ms)
                return None
            return None, None
        self._down_until = None
        answer = await self._answer_for(seq, dev.timing.data_timeout_ms)
        if answer is None:
            dev.log.event("DATA", type=mtype, seq=seq, status="timeout", via="mqtt")
            return None if fallback else (None, None)
        status = 200 if answer.get("ok") is True else _REFUSALS.get(answer.get("error"), 400)
        dev.log.event("DATA", type=mtype, seq=seq, status=status, via="mqtt")
        return status, answer

    async def _send(self, frame):
        if not self.connected:
            await self._connect()
        await self._publish(self._up, frame, 0)

    async def _answer_for(self, seq, timeout_ms):
        # Only the answer that names our seq: one without seq, or another message's
        # (a redelivered copy, a stale refusal), must not make us send the data again.
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        while True:
            while self._answers:
                answer = self._answers.pop(0)
                if answer.get("seq") == seq:
                    return answer
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                return None
            self._got.clear()
            try:
                await asyncio.wait_for_ms(self._got.wait(), left)
            except asyncio.TimeoutError:
                return None

    # -- the modem's MQTT client ------------------------------------------------------
    async def _connect(self):
        """Start the modem's client, account, will, CONNECT, subscription, "online"."""
        at = self._at
        cfg = self._dev.cfg
        dev_id = cfg["device_id"]
        if not self._started:
            await self._ask("AT+CMQTTSTART", "+CMQTTSTART:", _START_MS, (0, 23))
            self._started = True
        try:
            await at.send('AT+CMQTTACCQ=0,"%s",%d' % (dev_id, 1 if cfg["mqtt_tls"] else 0))
        except AtError:
            pass  # +CMQTTACCQ: 0,19: client 0 is already ours
        if cfg["mqtt_tls"]:
            await at.send("AT+CMQTTSSLCFG=0,0")
        await at.send("AT+CMQTTWILLTOPIC=0,%d" % len(self._status), payload=self._status.encode())
        await at.send("AT+CMQTTWILLMSG=0,7,1", payload=b"offline")
        password = message.sign(cfg["key"], b"tgd-mqtt-password")[:32]
        if self._unsure:
            # An earlier CONNECT got no result: it may have succeeded late. Start clean.
            try:
                await at.send("AT+CMQTTDISC=0,60")
            except AtError:
                pass  # +CMQTTDISC: 0,11: it was not connected
        # clean session 0: answers published while the link was down wait in the broker
        try:
            await self._ask('AT+CMQTTCONNECT=0,"%s",%d,0,"%s","%s"' % (
                cfg["mqtt_url"], _KEEPALIVE_S, dev_id, password), "+CMQTTCONNECT:",
                self.connect_ms)
        except MqttDown as e:
            self._unsure = str(e).endswith("timeout")
            raise
        self._unsure = False
        await self._ask("AT+CMQTTSUB=0,%d,1" % len(self._down), "+CMQTTSUB:", _ACK_MS,
                        payload=self._down.encode())
        self.connected = True
        self._dev.log.event("MQTT", state="connected")
        await self._publish(self._status, b"online", 1)

    async def _publish(self, topic, payload, retain):
        at = self._at
        await at.send("AT+CMQTTTOPIC=0,%d" % len(topic), payload=topic.encode())
        await at.send("AT+CMQTTPAYLOAD=0,%d" % len(payload), payload=payload)
        await self._ask("AT+CMQTTPUB=0,1,60,%d" % retain, "+CMQTTPUB:", _ACK_MS)

    async def _ask(self, cmd, urc, timeout_ms, good=(0,), payload=None):
        # OK then "<urc> ...,<code>"; an immediate failure is "<urc> ...,<code>" then ERROR.
        w = self._at.urc_waiter(urc)
        try:
            await self._at.send(cmd, payload=payload)
        except BaseException as e:  # also MemoryError, a cancel: no waiter left behind
            if w.line is None or not isinstance(e, AtError):
                w.cancel()
                raise
        name = urc[6:-1].lower()
        try:
            line = await w.wait(timeout_ms)
        except AtTimeout:
            # The modem answered OK; the broker (not the modem) is silent: not a modem fault.
            raise MqttDown(name + ":timeout")
        code = _code(line)
        if code not in good:
            raise MqttDown("%s:%d" % (name, code))
