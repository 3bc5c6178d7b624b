# On-board self-test and modem identity, run by tools/flash.py through the REPL
# (docs/technician.md). It uses the firmware's own driver, journal and uplink, so a
# handset that passes sends its test message exactly as it would send an alarm.
#
# Output: one result per line, "TGD " + compact JSON, among the firmware's event lines:
#   TGD {"check":"modem answers","ok":true,"detail":"..."}
#   TGD {"info":{"imei":"...","iccid":"...","fw":"..."}}
#   TGD {"done":true}
# identity() prints {"ok":true,"imei":..,"iccid":..} or {"ok":false,"error":..,"detail":..}.
import binascii
import hashlib
import json
import time

import asyncio
from micropython import const

from tgd import config, message
from tgd.clock import Clock
from tgd.device import Device, FW_VERSION
from tgd.journal import Journal
from tgd.log import NullLog
from tgd.modem.at import AtEngine
from tgd.modem.errors import ModemError
from tgd.modem.sim7600 import Sim7600
from tgd.timing import Timing
from tgd.uplink.link import Uplink

_SIGNAL_MIN_CSQ = const(5)  # about -103 dBm: below this a call may not hold
_REG_TIMEOUT_MS = const(60000)
_GNSS_FIX_WAIT_MS = const(10000)  # a fix is a bonus at the bench (indoors): not required

# Every check, in the order they are printed; those after "modem answers" need the modem.
MODEM_CHECKS = ("SIM ready", "registered on the network", "signal", "battery",
                "GNSS on", "test message accepted")


def _emit(obj):
    print("TGD " + json.dumps(obj))


def _check(name, ok, detail=""):
    _emit({"check": name, "ok": bool(ok), "detail": str(detail)})
    return ok


def _dbm(csq):
    # AT+CSQ rssi: 0 = -113 dBm, 2 dB steps, 31 = -51 dBm or more
    return -113 + 2 * csq


def _sha256_hex(path):
    h = hashlib.sha256()
    buf = bytearray(512)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return binascii.hexlify(h.digest()).decode()


def firmware_intact(root):
    """(ok, detail): every file of fw_manifest.json is there with its sha256."""
    try:
        with open(root + "/fw_manifest.json") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return False, "no fw_manifest.json (flash the firmware with tgd-flash)"
    bad = []
    for name in manifest.get("files", {}):
        try:
            if _sha256_hex(root + "/" + name) != manifest["files"][name]:
                bad.append(name)
        except OSError:
            bad.append(name)
    if bad:
        return False, "changed or missing: " + ",".join(bad)
    return True, "%d files, fw %s" % (len(manifest.get("files", {})), manifest.get("fw", "?"))


def _board():
    # main.py is the board's boot script, not a module of the package: a frozen or ROMFS
    # image imports tgd.selftest without it (tgd_flash.image_memory imports every module)
    from main import make_board
    return make_board()


def _modem(board, log, boot_timeout_ms):
    modem = Sim7600(AtEngine(board.open_uart(), log), board, log)
    if boot_timeout_ms:
        modem.rdy_timeout_ms = boot_timeout_ms
    return modem


async def _identity(boot_timeout_ms):
    log = NullLog()
    modem = _modem(_board(), log, boot_timeout_ms)
    try:
        await modem.start()
        imei, iccid = await modem.identity()
    except ModemError as e:
        _emit({"ok": False, "error": "modem_not_answering", "detail": "%s %s" % (type(e).__name__, e)})
        return
    finally:
        modem.deinit()
    if not imei or not iccid:
        _emit({"ok": False, "error": "no_identity",
               "detail": "IMEI %s, ICCID %s (SIM inserted?)" % (imei, iccid)})
        return
    _emit({"ok": True, "imei": imei, "iccid": iccid})


def identity(boot_timeout_ms=0):
    """Print the modem's IMEI and ICCID (provisioning reads them through this)."""
    asyncio.run(_identity(boot_timeout_ms))
    asyncio.new_event_loop()


async def _sim_ready(modem):
    try:
        lines = await modem.at.send("AT+CPIN?")
    except ModemError as e:
        return False, str(e)
    for line in lines:
        if isinstance(line, str) and line.startswith("+CPIN:"):
            state = line[6:].strip()
            return state == "READY", state
    return False, "no +CPIN answer"


async def _gnss(modem):
    try:
        await modem.gnss_start()
        if not await modem.gnss_on():
            return False, "AT+CGPS? says off after AT+CGPS=1", None
        start = time.ticks_ms()
        fix = None
        while fix is None and time.ticks_diff(time.ticks_ms(), start) < _GNSS_FIX_WAIT_MS:
            fix = await modem.gnss_fix()
            if fix is None:
                await asyncio.sleep_ms(1000)
    except ModemError as e:
        return False, "%s %s" % (type(e).__name__, e), None
    finally:
        try:
            await modem.gnss_stop()  # off between alarms: it drains the battery
        except ModemError:
            pass
    if fix is None:
        return True, "on; no fix yet (normal indoors)", None
    g = {"m": "G", "lat": fix["lat"], "lon": fix["lon"], "acc": max(5, int(fix.get("acc") or 5)),
         "t": fix.get("t")}
    return True, "on; fix %.5f,%.5f +-%dm" % (g["lat"], g["lon"], g["acc"]), g


async def _run(boot_timeout_ms, reg_timeout_ms):
    log = NullLog()
    board = _board()
    root = board.mount_flash()
    cfg, problems, safe = config.load(root + "/config.json")
    detail = "device %s" % cfg["device_id"]
    if problems or safe:
        detail = ";".join("%s:%s" % p for p in problems) or safe
    _check("config valid", not problems and not safe, detail)
    ok, detail = firmware_intact(root)
    _check("firmware intact", ok, detail)

    modem = _modem(board, log, boot_timeout_ms)
    try:
        try:
            await modem.start()
            imei, iccid = await modem.identity()
        except ModemError as e:
            _check("modem answers", False, "%s %s" % (type(e).__name__, e))
            for name in MODEM_CHECKS:
                _check(name, False, "not run: the modem does not answer")
            return
        _check("modem answers", True, "IMEI %s" % imei)
        _emit({"info": {"imei": imei, "iccid": iccid, "fw": FW_VERSION}})

        ok, detail = await _sim_ready(modem)
        _check("SIM ready", ok, "ICCID %s, %s" % (iccid, detail))

        registered = await modem.wait_registered(reg_timeout_ms)
        cell = await modem.serving_cell()
        if cell:
            detail = "%s %d-%d lac %d ci %d" % (cell["rat"], cell["mcc"], cell["mnc"],
                                               cell["lac"], cell["ci"])
        else:
            detail = "no serving cell"
        _check("registered on the network", registered, detail)

        csq = await modem.signal()
        if csq == 99:
            _check("signal", False, "unknown (CSQ 99)")
        else:
            _check("signal", csq >= _SIGNAL_MIN_CSQ, "%d dBm (CSQ %d, needs %d)"
                   % (_dbm(csq), csq, _SIGNAL_MIN_CSQ))

        bat = await modem.battery_mv()
        _check("battery", bat is not None and bat >= cfg["low_battery_mv"],
               "%s mV (low at %d)" % (bat, cfg["low_battery_mv"]))

        ok, detail, fix = await _gnss(modem)
        _check("GNSS on", ok, detail)

        if safe:
            _check("test message accepted", False, "not run: configuration incomplete")
            return
        journal = Journal(root, log)
        journal.open()
        clock = Clock()
        clock.set(board.rtc_unix())
        clock.set(await modem.network_time())
        dev = Device(modem, journal, cfg, safe, log, clock, None, Timing(board.timing_scale()))
        dev.imei, dev.iccid = imei, iccid
        uplink = Uplink(dev)
        snap = {"fix": fix or ({"m": "C"} if cell else None), "cell": cell, "bat": bat, "csq": csq}
        status, answer = await uplink.post("test", snap)
        if status == 409:  # the journal's counter was behind the server: it jumped, retry once
            status, answer = await uplink.post("test", dict(snap))
        delivered = status is not None and message.answer_ok(status, answer)
        detail = "HTTP %s, seq %s" % (status if status is not None else "no answer", uplink.last_seq)
        if not delivered and answer:
            detail += ", " + str(answer.get("error", ""))
        _check("test message accepted", delivered, detail)
    finally:
        modem.deinit()
        _emit({"done": True})


def run(boot_timeout_ms=0, reg_timeout_ms=_REG_TIMEOUT_MS):
    """The commissioning self-test; prints one TGD line per check."""
    asyncio.run(_run(boot_timeout_ms, reg_timeout_ms))
    asyncio.new_event_loop()
