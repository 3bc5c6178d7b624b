"""The private Mosquitto of the MQTT tests (tgd_server.mqtt.private_broker)."""

from tgd_server.mqtt.private_broker import (  # noqa: F401 (re-exported for the tests)
    PrivateBroker,
    free_port,
    mosquitto_binary,
    port_open,
)
