# heapsize: 256k  (the driver, the uplink and these helpers are compiled in the heap)
# The MQTT uplink against a scripted SIM7600: connect with the device's account, the
# will, the subscription, QoS 1 publish, the signed answer on the downlink (raw topic
# and payload blocks, a line break inside), reconnection, refusals, the HTTP fallback
# of an alarm, and the config keys.
import asyncio

from tgd import config
from tgd import message
from tgd.clock import Clock
from tgd.device import Device
from tgd.journal import Journal
from tgd.log import Log
from tgd.uplink.mqtt import MqttLink
from scripted_modem import ERROR, OK, answer, make_modem, ok
from tgd.timing import Timing
from tgd.uplink.link import Uplink
from scratch import empty_dir, unique_dir

DIR = unique_dir("mqtt")
KEY = "ab" * 32
URL = "http://127.0.0.1:9/api/v1/device/messages"
BROKER = "tcp://127.0.0.1:1883"
DOWN = b"tgd/NC0001/down"
PASSWORD = message.sign(KEY, b"tgd-mqtt-password")[:32]


def make_dev(script, **over):
    empty_dir(DIR)
    modem, stream, _, lines = make_modem(script)
    cfg = config.defaults()
    cfg.update({"device_id": "NC0001", "key": KEY, "server_url": URL, "transport": "mqtt",
                "mqtt_url": BROKER})
    cfg.update(over)
    log = Log(sink=lines.append)
    journal = Journal(DIR, log)
    journal.open()
    dev = Device(modem, journal, cfg, None, log, Clock(), None, Timing(0.001))
    dev.timing.data_timeout_ms = 300
    dev.timing.scale = 1.0  # delays computed from now on (the broker retry) are real ones
    dev.mqtt = MqttLink(dev)
    return dev, stream, lines


def body(mtype, seq, aid=None):
    extra = {"aid": aid, "call": "dialing", "sms": "pending"} if aid else {}
    return message.build(mtype, "NC0001", seq, None, "1.0.0", None, None, None, None, **extra)


def snap(seq, aid=None):
    s = {"seq": seq}
    if aid:
        s.update({"aid": aid, "call": "dialing", "sms": "pending"})
    return s


def frame(b):
    return message.sign(KEY, b).encode() + b"\n" + b


def rx(payload, topic=DOWN):
    return (b"\r\n+CMQTTRXSTART: 0,%d,%d\r\n" % (len(topic), len(payload))
            + b"\r\n+CMQTTRXTOPIC: 0,%d\r\n" % len(topic) + topic
            + b"\r\n+CMQTTRXPAYLOAD: 0,%d\r\n" % len(payload) + payload
            + b"\r\n+CMQTTRXEND: 0\r\n")


def prompt(cmd, data, reply=OK):
    return [answer(cmd, b"\r\n>"), (data, [reply])]


def publish(topic, payload, retain, acks):
    return (prompt("AT+CMQTTTOPIC=0,%d" % len(topic), topic)
            + prompt("AT+CMQTTPAYLOAD=0,%d" % len(payload), payload)
            + [answer("AT+CMQTTPUB=0,1,60,%d" % retain, *acks)])


def connect(start=OK + b"\r\n+CMQTTSTART: 0\r\n", accq=OK, code=0, tls=0):
    steps = [answer("AT+CMQTTSTART", start), answer('AT+CMQTTACCQ=0,"NC0001",%d' % tls, accq)]
    if tls:
        steps.append(ok("AT+CMQTTSSLCFG=0,0"))
    steps += prompt("AT+CMQTTWILLTOPIC=0,17", b"tgd/NC0001/status")
    steps += prompt("AT+CMQTTWILLMSG=0,7,1", b"offline")
    steps.append(answer('AT+CMQTTCONNECT=0,"%s",60,0,"NC0001","%s"' % (BROKER, PASSWORD),
                        OK, 5, b"\r\n+CMQTTCONNECT: 0,%d\r\n" % code))
    if code:
        return steps
    steps += prompt("AT+CMQTTSUB=0,15,1", DOWN, OK + b"\r\n+CMQTTSUB: 0,0\r\n")
    steps += publish(b"tgd/NC0001/status", b"online", 1, [OK + b"\r\n+CMQTTPUB: 0,0\r\n"])
    return steps


def acked(answer_payload):
    return [OK, 5, b"\r\n+CMQTTPUB: 0,0\r\n", 5, rx(answer_payload)]


def http_steps(b, answer_body):
    sig = "X-TGD-Signature: " + message.sign(KEY, b)
    return [
        ok("AT+HTTPINIT"), ok('AT+HTTPPARA="URL","%s"' % URL),
        ok('AT+HTTPPARA="USERDATA","%s"' % sig), ok('AT+HTTPPARA="CONTENT","application/json"'),
        answer("AT+HTTPDATA=%d,10000" % len(b), b"\r\nDOWNLOAD\r\n"), (b, [OK]),
        answer("AT+HTTPACTION=1", OK, 5, b"\r\n+HTTPACTION: 1,200,%d\r\n" % len(answer_body)),
        answer("AT+HTTPREAD=0,%d" % len(answer_body),
               OK + b"\r\n+HTTPREAD: DATA,%d\r\n" % len(answer_body) + answer_body
               + b"\r\n+HTTPREAD: 0\r\n"),
        ok("AT+HTTPTERM"),
    ]


def events(lines, name):
    return [x for x in lines if x.split(" ")[1] == name]


async def test_heartbeat_goes_by_mqtt_and_the_signed_answer_comes_back():
    b = body("heartbeat", 7)
    ans = b'{"ok":true,"seq":7,"cmds":[{"id":3,"type":"locate"}]}'
    stale = b'{"ok":true,"seq":6,"cmds":[]}'  # an earlier message's answer, redelivered
    script = connect() + publish(b"tgd/NC0001/up", frame(b), 0,
                                 [OK, 5, b"\r\n+CMQTTPUB: 0,0\r\n", rx(frame(stale)), 5,
                                  rx(frame(ans))])
    dev, stream, lines = make_dev(script)
    status, got = await Uplink(dev).post("heartbeat", snap(7))
    assert status == 200 and got["seq"] == 7 and got["cmds"][0]["id"] == 3, (status, got)
    assert stream.done(), (stream.script[:1], stream.unexpected)
    assert events(lines, "DATA")[-1].endswith("seq=7 status=200 type=heartbeat via=mqtt")
    assert events(lines, "MQTT")[0].endswith("state=connected")
    # Connected: the next message is published at once.
    b2 = body("heartbeat", 8)
    stream.add(b"AT+CMQTTTOPIC=0,13\r", [b"\r\n>"])
    for step in (publish(b"tgd/NC0001/up", frame(b2), 0,
                         acked(frame(b'{"ok":true,"seq":8,"cmds":[]}'))))[1:]:
        stream.add(*step)
    assert (await Uplink(dev).post("heartbeat", snap(8)))[0] == 200
    assert stream.done(), stream.unexpected
    dev.modem.deinit()


async def test_answers_with_a_bad_signature_or_foreign_topic_are_ignored():
    b = body("heartbeat", 7)
    good = b'{"ok":true,"seq":7,"cmds":[]}'
    forged = b"00" * 32 + b"\n" + good
    script = connect() + publish(b"tgd/NC0001/up", frame(b), 0,
                                 [OK, b"\r\n+CMQTTPUB: 0,0\r\n", rx(forged),
                                  rx(frame(good), b"tgd/NC0002/down")])
    dev, stream, lines = make_dev(script)
    assert await Uplink(dev).post("heartbeat", snap(7)) == (None, None)
    errors = [x for x in events(lines, "ERROR") if "where=mqtt" in x]
    assert len(errors) == 2 and "bad_signature" in errors[0] and "foreign_topic" in errors[1]
    assert events(lines, "DATA")[-1].endswith("status=timeout type=heartbeat via=mqtt")
    dev.modem.deinit()


async def test_replay_refusal_is_409_and_jumps_seq():
    b = body("heartbeat", 7)
    refusal = b'{"ok":false,"error":"replay","detail":"seen","seq_floor":500,"seq":7}'
    script = connect() + publish(b"tgd/NC0001/up", frame(b), 0, acked(frame(refusal)))
    dev, stream, _ = make_dev(script)
    status, got = await Uplink(dev).post("heartbeat", snap(7))
    assert status == 409 and got["seq_floor"] == 500
    assert dev.journal.next_seq() > 500
    dev.modem.deinit()


async def test_answers_to_other_messages_are_ignored():
    # A refusal without seq (a retained or malformed uplink), a refusal of an earlier
    # message (a redelivered copy) and an earlier answer: none is ours. Only the answer
    # naming seq 7 is taken; nothing is sent again and seq does not jump.
    b = body("position", 7, "3fa9c01b")
    strays = [b'{"ok":false,"error":"replay","detail":"seen","seq_floor":900}',
              b'{"ok":false,"error":"out_of_window","detail":"old","seq_floor":900,"seq":6}',
              b'{"ok":false,"error":"malformed_json","detail":"x"}',
              b'{"ok":true,"seq":5,"cmds":[]}']
    ours = b'{"ok":true,"seq":7,"alarm":{"aid":"3fa9c01b","state":"received"},"cmds":[]}'
    acks = [OK, 5, b"\r\n+CMQTTPUB: 0,0\r\n"]
    for stray in strays:
        acks += [5, rx(frame(stray))]
    script = connect() + publish(b"tgd/NC0001/up", frame(b), 0, acks + [5, rx(frame(ours))])
    dev, stream, lines = make_dev(script)
    status, got = await Uplink(dev).post("position", snap(7, "3fa9c01b"))
    assert status == 200 and got["seq"] == 7 and got["alarm"]["state"] == "received", got
    assert stream.done(), (stream.script[:1], stream.unexpected)  # published once
    assert dev.journal.next_seq() < 900
    assert [x for x in events(lines, "DATA")][-1].endswith("seq=7 status=200 type=position via=mqtt")
    dev.modem.deinit()


async def test_a_stray_refusal_alone_is_a_time_out_not_a_409():
    b = body("heartbeat", 7)
    stray = b'{"ok":false,"error":"replay","detail":"seen","seq_floor":900}'
    script = connect() + publish(b"tgd/NC0001/up", frame(b), 0, acked(frame(stray)))
    dev, stream, lines = make_dev(script)
    assert await Uplink(dev).post("heartbeat", snap(7)) == (None, None)
    assert dev.journal.next_seq() < 900
    assert events(lines, "DATA")[-1].endswith("status=timeout type=heartbeat via=mqtt")
    dev.modem.deinit()


async def test_connection_lost_then_reconnect_on_next_message():
    b = body("heartbeat", 7)
    script = connect() + publish(b"tgd/NC0001/up", frame(b), 0,
                                 acked(frame(b'{"ok":true,"seq":7,"cmds":[]}')))
    dev, stream, lines = make_dev(script)
    assert (await Uplink(dev).post("heartbeat", snap(7)))[0] == 200
    stream.push(b"\r\n+CMQTTCONNLOST: 0,1\r\n")
    await asyncio.sleep_ms(20)
    assert not dev.mqtt.connected
    assert events(lines, "MQTT")[-1].endswith("state=lost why=CONNLOST:0,1")
    stream.push(b"\r\n+CMQTTNONET\r\n")  # the service stopped too: START again
    await asyncio.sleep_ms(20)
    b2 = body("heartbeat", 8)
    for step in connect() + publish(b"tgd/NC0001/up", frame(b2), 0,
                                    acked(frame(b'{"ok":true,"seq":8,"cmds":[]}'))):
        stream.add(*step)
    assert (await Uplink(dev).post("heartbeat", snap(8)))[0] == 200
    assert stream.done(), (stream.script[:1], stream.unexpected)
    dev.modem.deinit()


async def test_modem_that_forgot_the_client_is_reconnected_once():
    # After a modem reboot the PUB fails at once (+CMQTTPUB: 0,11, ERROR): connect again.
    b = body("heartbeat", 7)
    script = connect() + publish(b"tgd/NC0001/up", frame(b), 0,
                                 acked(frame(b'{"ok":true,"seq":7,"cmds":[]}')))
    dev, stream, _ = make_dev(script)
    assert (await Uplink(dev).post("heartbeat", snap(7)))[0] == 200
    b2 = body("heartbeat", 8)
    again = publish(b"tgd/NC0001/up", frame(b2), 0, [b"\r\n+CMQTTPUB: 0,11\r\n" + ERROR])
    again += connect(start=b"\r\n+CMQTTSTART: 23\r\n" + ERROR,
                     accq=b"\r\n+CMQTTACCQ: 0,19\r\n" + ERROR)
    again += publish(b"tgd/NC0001/up", frame(b2), 0,
                     acked(frame(b'{"ok":true,"seq":8,"cmds":[]}')))
    for step in again:
        stream.add(*step)
    assert (await Uplink(dev).post("heartbeat", snap(8)))[0] == 200
    assert stream.done(), (stream.script[:1], stream.unexpected)
    dev.modem.deinit()


async def test_alarm_falls_back_to_http_when_the_broker_is_unreachable():
    aid = "3fa9c01b"
    b = body("alarm", 7, aid)
    ans = b'{"ok":true,"seq":7,"alarm":{"aid":"3fa9c01b","state":"received"},"cmds":[]}'
    script = connect(code=3) + http_steps(b, ans)  # a refused connect is not retried
    dev, stream, lines = make_dev(script)
    status, got = await Uplink(dev).post("alarm", snap(7, aid))
    assert status == 200 and got["alarm"]["aid"] == aid
    data = events(lines, "DATA")
    assert "status=mqtt_down" in data[0] and "what=connect:3" in data[0], data
    assert data[1].endswith("seq=7 status=200 type=alarm"), data  # by HTTP
    # The next alarm message goes straight to HTTP for a while (no CONNECT in between).
    b2 = body("position", 8, aid)
    for step in http_steps(b2, ans.replace(b'"seq":7', b'"seq":8')):
        stream.add(*step)
    assert (await Uplink(dev).post("position", snap(8, aid)))[0] == 200
    assert stream.done(), (stream.script[:1], stream.unexpected)
    dev.modem.deinit()


async def test_heartbeat_does_not_fall_back_to_http():
    dev, stream, lines = make_dev(connect(code=30))
    assert await Uplink(dev).post("heartbeat", snap(7)) == (None, None)
    assert stream.done() and "HTTP" not in " ".join(stream.commands())
    assert "what=connect:30" in events(lines, "DATA")[0]
    dev.modem.deinit()


async def test_tls_acquires_the_client_with_server_type_1():
    b = body("heartbeat", 7)
    script = connect(tls=1) + publish(b"tgd/NC0001/up", frame(b), 0,
                                      acked(frame(b'{"ok":true,"seq":7,"cmds":[]}')))
    dev, stream, _ = make_dev(script, mqtt_tls=True)
    assert (await Uplink(dev).post("heartbeat", snap(7)))[0] == 200
    assert stream.done(), (stream.script[:1], stream.unexpected)
    dev.modem.deinit()


def test_config_keys_are_validated():
    base = {"device_id": "NC0001", "key": KEY, "server_url": URL}
    cfg, problems, safe = config.validate(dict(base, transport="mqtt", mqtt_url=BROKER,
                                               mqtt_tls=True))
    assert safe is None and problems == [] and cfg["transport"] == "mqtt" and cfg["mqtt_tls"]
    cfg, problems, _ = config.validate(dict(base, transport="mqtt"))
    assert cfg["transport"] == "http" and problems == [("mqtt_url", "missing_for_mqtt:http_used")]
    for bad in ("mqtt://h:1", "tcp://", 'tcp://h"x', "tcp://a b", 5):
        cfg, problems, _ = config.validate(dict(base, mqtt_url=bad))
        assert problems == [("mqtt_url", "not_tcp://host:port")], (bad, problems)
        assert cfg["mqtt_url"] == ""
    cfg, problems, _ = config.validate(dict(base, mqtt_url="", mqtt_tls=False))
    assert problems == [] and cfg["transport"] == "http"  # the defaults, as the tool writes them
    cfg, problems, _ = config.validate(dict(base, mqtt_tls=1))
    assert problems == [("mqtt_tls", "not_true_or_false")] and cfg["mqtt_tls"] is False


async def test_connect_without_result_is_cleared_before_the_next_one():
    # CONNECT answered OK but no +CMQTTCONNECT: it may succeed late, so the next
    # attempt disconnects first; the broker's silence is not counted as a silent modem.
    b = body("heartbeat", 7)
    steps = connect()
    lost = steps[:6] + [answer(steps[6][0].decode()[:-1], OK)]
    dev, stream, lines = make_dev(lost)
    dev.mqtt.connect_ms = 50
    assert await Uplink(dev).post("heartbeat", snap(7)) == (None, None)
    assert "what=connect:timeout" in events(lines, "DATA")[-1]
    assert dev.modem.at.silent_count == 0
    again = [answer('AT+CMQTTACCQ=0,"NC0001",0', b"\r\n+CMQTTACCQ: 0,19\r\n" + ERROR)]
    again += steps[2:6] + [answer("AT+CMQTTDISC=0,60", OK)] + steps[6:]
    again += publish(b"tgd/NC0001/up", frame(b), 0,
                     acked(frame(b'{"ok":true,"seq":7,"cmds":[]}')))
    for step in again:
        stream.add(*step)
    assert (await Uplink(dev).post("heartbeat", snap(7)))[0] == 200
    assert stream.done(), (stream.script[:1], stream.unexpected)
    dev.modem.deinit()


async def test_a_memory_error_in_a_command_leaves_no_urc_waiter_behind():
    # At the heap's limit a MemoryError (or a cancel) may hit the command after its
    # waiter was registered: the waiter must go, or it would stay in the engine for good.
    dev, stream, lines = make_dev([])
    at = dev.modem.at
    before = len(at._waiters)

    async def no_memory(cmd, expect=None, timeout_ms=0, payload=None):
        raise MemoryError("memory allocation failed")

    at.send = no_memory
    try:
        await dev.mqtt._ask("AT+CMQTTSTART", "+CMQTTSTART:", 100)
    except MemoryError:
        pass
    else:
        assert False, "the MemoryError was swallowed"
    assert len(at._waiters) == before, at._waiters
    dev.modem.deinit()
