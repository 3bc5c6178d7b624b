# The HTTP transport: one signed device message POSTed through the modem's HTTP
# client (AT+HTTP*), the server's answer parsed. link.Uplink.post calls `exchange`,
# as it calls mqtt.MqttLink.exchange when the transport is MQTT.
from tgd import message
from tgd.modem.errors import ModemError


async def exchange(dev, mtype, seq, body, signature):
    """-> (status, answer); (None, None) when the modem failed."""
    try:
        status, data = await dev.modem.http_post(
            dev.cfg["server_url"], body, "X-TGD-Signature: " + signature,
            dev.timing.data_timeout_ms)
    except ModemError as e:
        dev.log.event("DATA", type=mtype, seq=seq, status="timeout", what=type(e).__name__)
        return None, None
    answer = message.parse_answer(data) if data else None
    dev.log.event("DATA", type=mtype, seq=seq, status=status)
    return status, answer
