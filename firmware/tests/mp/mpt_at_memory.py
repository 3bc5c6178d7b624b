# heapsize: 128k
# The modem layer's heap: import it and run a whole exchange (start, call, SMS, 21 HTTP
# POSTs) against a scripted modem; nothing may grow per message. Prints the figures:
#   cd firmware/tests/mp && MICROPYPATH=.frozen:.:../.. ../../../build/esp32-vm/micropython \
#       -X heapsize=128k mprun.py mpt_at_memory
# 128k: this test module and its scripted modem are compiled into the same heap (the
# firmware is frozen on the ESP32-faithful VM; on the PyPI port it is compiled too).
# See docs/firmware-modem.md "Figures".
import gc

gc.collect()
_BASE = gc.mem_alloc()


def _mem():
    gc.collect()
    return gc.mem_alloc()


def _report(what, used):
    print("MEM", what, used)


async def test_whole_exchange_fits_in_the_heap():
    import asyncio

    from tgd.modem.at import AtEngine
    from tgd.modem.sim7600 import Sim7600

    loaded = _mem()
    _report("modem_layer_resident_bytes", loaded - _BASE)
    from scripted_stream import ScriptedStream
    stream = ScriptedStream()
    peak = [0]

    class Board:
        def pwrkey(self, pressed):
            pass

        def dtr(self, level):
            pass

    class Quiet:
        def event(self, name, **fields):
            pass

        def debug(self, name, **fields):
            pass

        def error(self, where, what):
            pass

    modem = Sim7600(AtEngine(stream, Quiet()), Board(), Quiet())
    body = b'{"v":1,"dev":"NC0001","seq":1201,"type":"alarm","t":1795678200}' * 8
    answer = b'{"ok":true,"seq":1201,"alarm":{"aid":"3fa9c01b","state":"received"},"cmds":[]}'

    def reply(cmd, data):
        stream.add(cmd.encode() + b"\r", [data])

    ok = b"\r\nOK\r\n"
    for cmd in ("AT", "ATE0", "AT+CMEE=2", "AT+CLIP=1", "AT+CLCC=1", "AT+CVHU=0", "AT+CLVL=0",
                "AT+CTZU=1", "AT+CREG=2", "AT+CEREG=2", "AT+CMGF=1", 'AT+CSCS="GSM"',
                "AT+CSMP=49,167,0,0", "AT+CNMI=2,1,0,1,0"):
        reply(cmd, ok)
    reply("AT+CPIN?", b"\r\n+CPIN: READY\r\n" + ok)
    await modem.start()
    peak[0] = max(peak[0], _mem())
    reply("ATD17;", ok + b'\r\n+CLCC: 1,0,2,0,0,"17",129\r\n\r\nVOICE CALL: BEGIN\r\n')
    reply("AT+CLVL=0", ok)
    reply("AT+VMUTE=1", ok)
    await modem.dial("17")
    await asyncio.sleep_ms(10)
    reply('AT+CMGS="+687700100"', b"\r\n> ")
    stream.add(b"A" * 150 + b"\x1a", [b"\r\n+CMGS: 9\r\n" + ok])
    assert await modem.send_sms("+687700100", "A" * 150) == 9
    peak[0] = max(peak[0], _mem())
    url = "http://127.0.0.1:8080/api/v1/device/messages"
    for cmd in ("AT+HTTPINIT", 'AT+HTTPPARA="URL","%s"' % url, 'AT+HTTPPARA="USERDATA","X-TGD-Signature: %s"' % ("ab" * 32),
                'AT+HTTPPARA="CONTENT","application/json"'):
        reply(cmd, ok)
    reply("AT+HTTPDATA=%d,10000" % len(body), b"\r\nDOWNLOAD\r\n")
    stream.add(body, [ok])
    reply("AT+HTTPACTION=1", ok + b"\r\n+HTTPACTION: 1,200,%d\r\n" % len(answer))
    reply("AT+HTTPREAD=0,%d" % len(answer),
          ok + b"\r\n+HTTPREAD: DATA,%d\r\n" % len(answer) + answer + b"\r\n+HTTPREAD: 0\r\n")
    reply("AT+HTTPTERM", ok)
    first = None
    for _ in range(21):
        status, got = await modem.http_post(url, body, "X-TGD-Signature: " + "ab" * 32, 5000)
        assert (status, got) == (200, answer)
        stream.forget()  # the script's own record, not the driver's memory
        got = None
        peak[0] = max(peak[0], _mem())
        for cmd in ("AT+HTTPINIT", 'AT+HTTPPARA="URL","%s"' % url,
                    'AT+HTTPPARA="USERDATA","X-TGD-Signature: %s"' % ("ab" * 32),
                    'AT+HTTPPARA="CONTENT","application/json"'):
            reply(cmd, ok)
        reply("AT+HTTPDATA=%d,10000" % len(body), b"\r\nDOWNLOAD\r\n")
        stream.add(body, [ok])
        reply("AT+HTTPACTION=1", ok + b"\r\n+HTTPACTION: 1,200,%d\r\n" % len(answer))
        reply("AT+HTTPREAD=0,%d" % len(answer),
              ok + b"\r\n+HTTPREAD: DATA,%d\r\n" % len(answer) + answer + b"\r\n+HTTPREAD: 0\r\n")
        reply("AT+HTTPTERM", ok)
        settled = _mem()  # same point of every loop: the next post's script is queued
        if first is None:
            first = settled
    _report("after_start_call_sms_and_1_http_post_bytes", first - _BASE)
    _report("after_21_http_posts_bytes", settled - _BASE)
    _report("largest_live_after_gc_bytes", peak[0] - _BASE)
    _report("heap_free_bytes", gc.mem_free())
    # Twenty more posts must not have grown the live heap: nothing leaks per message.
    assert settled - first < 1024, (first, settled)
    modem.deinit()
