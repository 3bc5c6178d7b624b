"""MQTT over the modem (AT+CMQTT*): not emulated yet (issue 6).

The place for it: a COMMANDS table like the other cmd_*.py modules (CMQTTSTART,
CMQTTACCQ, CMQTTCONNECT, CMQTTTOPIC/CMQTTPAYLOAD with their `>` prompts of exact
length via `modem.start_data_input`, CMQTTPUB, CMQTTSUB, the +CMQTTRX* URCs and
+CMQTTCONNLOST), backed by a real broker connection from the network (paho-mqtt), as
HTTP is backed by urllib. Until then every AT+CMQTT* answers ERROR, like an unknown command.
"""

from __future__ import annotations

COMMANDS: dict = {}
