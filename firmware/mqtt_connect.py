# The MQTT link's connection to the broker (mqtt_uplink.MqttLink._connect): start the
# modem's client, account, will, CONNECT, subscription, "online". Loaded for one
# connection and dropped (sys.modules.pop by the caller): it runs once per link, and
# every module costs heap (docs/firmware.md "Memory"). `self` is the MqttLink.
from micropython import const

import message
from errors import AtError
from mqtt_uplink import MqttDown

_KEEPALIVE_S = const(60)
_START_MS = const(15000)
_ACK_MS = const(20000)  # +CMQTTSUB after the OK (as mqtt_uplink's)


async def connect(self):
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
