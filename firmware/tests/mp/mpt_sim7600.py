# heapsize: 256k  (tests and helpers are compiled in the heap too; mpt_at_memory.py prints the figures)
# SIM7600 driver: start-up, recovery, network queries, GNSS, against a scripted modem.
import asyncio

from tgd.modem.errors import ModemSilent
from scripted_modem import BOOT, ERROR, OK, answer, events, init_steps, make_modem, ok
from scripted_stream import until

LTE_CPSI = b"+CPSI: LTE,Online,546-01,0x1100,20513,291,EUTRAN-BAND3,1675,4,4,-93,-1006,-731,14"


async def settle(ms=20):
    await asyncio.sleep_ms(ms)


async def test_start_when_the_modem_already_answers():
    modem, stream, board, lines = make_modem([ok("AT")] + init_steps())
    await modem.start()
    assert stream.done(), (stream.script[:1], stream.unexpected)
    assert board.pwrkey_levels == []  # no pulse: it was on
    assert board.dtr_levels == [0]
    cmds = stream.commands()
    assert cmds[:4] == ["AT", "ATE0", "AT+CMEE=2", "AT+CLIP=1"], cmds
    for needed in ("AT+CLCC=1", "AT+CVHU=0", "AT+CMGF=1", 'AT+CSCS="GSM"', "AT+CSMP=49,167,0,0",
                   "AT+CNMI=2,1,0,1,0", "AT+CTZU=1", "AT+CLVL=0"):
        assert needed in cmds, needed
    modem.deinit()


async def test_start_sets_the_configured_apn_and_again_after_a_reboot():
    modem, stream, board, lines = make_modem([ok("AT")] + init_steps("mobilis"))
    modem.apn = "mobilis"
    await modem.start()
    assert stream.done(), (stream.script[:1], stream.unexpected)
    assert stream.commands().count('AT+CGDCONT=1,"IP","mobilis"') == 1, stream.commands()
    stream.add(b"AT+CSQ\r", [b"\r\nRDY\r\n"])  # a reboot forgets the PDP context
    for step in init_steps("mobilis"):
        stream.add(*step)
    try:
        await modem.signal()
    except Exception as e:  # noqa: BLE001
        assert type(e).__name__ == "ModemRebooted", e
    await until(stream.done, what="re-initialised")
    assert stream.commands().count('AT+CGDCONT=1,"IP","mobilis"') == 2, stream.commands()
    modem.deinit()


async def test_start_with_an_empty_apn_keeps_the_modem_default():
    modem, stream, board, lines = make_modem([ok("AT")] + init_steps())
    modem.apn = ""
    await modem.start()
    assert stream.done(), (stream.script[:1], stream.unexpected)
    assert [c for c in stream.commands() if "CGDCONT" in c] == []
    modem.deinit()


async def test_start_powers_on_a_silent_modem_and_waits_for_rdy():
    modem, stream, board, lines = make_modem([answer("AT")])
    task = asyncio.create_task(modem.start())
    for _ in range(100):  # one unanswered probe, then the PWRKEY pulse
        if len(board.pwrkey_levels) == 2:
            break
        await settle(20)
    assert board.pwrkey_levels == [True, False], board.pwrkey_levels
    for step in init_steps():
        stream.add(*step)
    stream.push(BOOT)
    await task
    assert stream.done(), stream.unexpected
    assert len(events(lines, "MODEM_POWER")) == 1
    assert "action=on" in events(lines, "MODEM_POWER")[0]
    assert events(lines, "MODEM_REBOOT") == []  # an expected RDY is no reboot
    modem.deinit()


async def test_start_raises_modem_silent_when_nothing_answers():
    modem, stream, board, lines = make_modem([answer("AT")] * 3)
    try:
        await modem.start()
        raise AssertionError("no ModemSilent")
    except ModemSilent as e:
        assert e.stage == "power_on"
    assert board.pwrkey_levels == [True, False]
    modem.deinit()


async def test_sim_state_is_checked_at_start():
    for reply, state in ((b"\r\n+CPIN: READY\r\n" + OK, "READY"),
                         (b"\r\n+CPIN: SIM PIN\r\n" + OK, "SIM PIN"),
                         (b"\r\n+CME ERROR: SIM not inserted\r\n", "absent"),
                         (b"\r\n+CME ERROR: 10\r\n", "absent")):
        steps = init_steps()
        steps[-1] = answer("AT+CPIN?", reply)
        modem, stream, _, lines = make_modem([ok("AT")] + steps)
        await modem.start()
        assert modem.sim == state, (reply, modem.sim)
        assert any("where=sim" in x for x in lines) == (state != "READY"), lines
        assert stream.done()
        modem.deinit()


async def test_an_init_command_refused_is_logged_and_skipped():
    steps = init_steps()
    steps[2] = answer("AT+CLIP=1", ERROR)
    modem, stream, board, lines = make_modem([ok("AT")] + steps)
    await modem.start()
    assert stream.done()
    assert any("modem_init" in x and "CLIP" in x for x in lines), lines
    modem.deinit()


async def test_rdy_mid_work_reinitialises_and_tells_the_layer_above():
    modem, stream, board, lines = make_modem([ok("AT")] + init_steps())
    await modem.start()
    reboots = []
    modem.on_reboot = lambda: reboots.append(1)
    stream.add(b"AT+CSQ\r", [b"\r\nRDY\r\n"])
    for step in init_steps():
        stream.add(*step)
    try:
        await modem.signal()
        raise AssertionError("no ModemRebooted")
    except Exception as e:  # noqa: BLE001
        assert type(e).__name__ == "ModemRebooted", e
    await until(lambda: reboots and stream.done(), what="re-initialised")
    assert reboots == [1]
    assert len(events(lines, "MODEM_REBOOT")) == 1
    assert stream.done(), (stream.script[:1], stream.unexpected)
    modem.deinit()


async def test_rdy_reinit_that_runs_out_of_heap_is_tried_again():
    # A reboot comes mid-alarm, when the heap is fullest: the re-init may raise
    # MemoryError. The modem must still be initialised again (left with echo on and in
    # PDU mode, it would refuse every SMS of the alarm).
    modem, stream, board, lines = make_modem([ok("AT")] + init_steps())
    await modem.start()
    real = modem._init
    failures = [2]

    async def short_of_heap():
        if failures[0] > 0:
            failures[0] -= 1
            raise MemoryError("memory allocation failed, allocating 184 bytes")
        return await real()

    modem._init = short_of_heap
    try:
        for step in init_steps():
            stream.add(*step)
        stream.push(b"\r\nRDY\r\n")
        await until(lambda: stream.done(), what="re-initialised after two MemoryErrors")
    finally:
        modem._init = real
    assert failures == [0]
    assert len([x for x in lines if "modem_reinit" in x and "MemoryError" in x]) == 2, lines
    modem.deinit()


async def test_command_time_outs_in_a_row_are_reported_a_late_urc_is_not():
    # Device power-cycles a silent modem from these reports: only commands that get no
    # final result code count; a +HTTPACTION that the network is slow to bring must not
    # (a power cycle mid-alarm would drop the police call).
    modem, stream, board, lines = make_modem([ok("AT")] + init_steps())
    await modem.start()
    silent = []
    modem.on_silent = silent.append
    modem.at.silent_count = 0
    for _ in range(2):
        try:
            await modem.at.send("AT+CSQ", timeout_ms=30)
            raise AssertionError("no AtTimeout")
        except Exception as e:  # noqa: BLE001
            assert type(e).__name__ == "AtTimeout", e
    assert silent == [1, 2], silent
    stream.add(b"AT+CSQ\r", [b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"])
    await modem.at.send("AT+CSQ")
    w = modem.at.urc_waiter("+HTTPACTION:")
    try:
        await w.wait(30)
        raise AssertionError("no AtTimeout")
    except Exception as e:  # noqa: BLE001
        assert type(e).__name__ == "AtTimeout", e
    stream.add(b"AT+CSQ\r", [])
    try:
        await modem.at.send("AT+CSQ", timeout_ms=30)
    except Exception:  # noqa: BLE001
        pass
    assert silent == [1, 2, 1], silent  # the answered CSQ reset the count; the URC did not count
    modem.deinit()


async def test_power_cycle_pulses_off_then_on_and_reinitialises():
    modem, stream, board, lines = make_modem([ok("AT")] + init_steps())
    await modem.start()
    task = asyncio.create_task(modem.power_cycle())
    await until(lambda: len(board.pwrkey_levels) == 4, what="two pulses")
    assert board.pwrkey_levels == [True, False, True, False], board.pwrkey_levels
    for step in init_steps():
        stream.add(*step)
    stream.push(BOOT)
    await task
    assert stream.done()
    assert "action=cycle" in events(lines, "MODEM_POWER")[-1]
    modem.deinit()


async def test_power_cycle_off_pulse_is_long_enough():
    # The real timing: >= 2.5 s off pulse, >= 100 ms on pulse (class defaults).
    from tgd.modem.sim7600 import Sim7600
    assert Sim7600.pwrkey_off_ms >= 2500
    assert 100 <= Sim7600.pwrkey_on_ms < 2500
    assert Sim7600.rdy_timeout_ms >= 15000


async def test_wait_registered_polls_until_home_or_roaming():
    modem, stream, _, lines = make_modem([
        ok("AT+CEREG?", b"+CEREG: 2,2"), ok("AT+CREG?", b"+CREG: 2,0"),
        ok("AT+CEREG?", b'+CEREG: 2,1,"1100","5021",7'), ok("AT+CREG?", b"+CREG: 2,0"),
    ])
    changes = []
    modem.on_registration = changes.append
    assert await modem.wait_registered(1000) is True
    assert changes == [True]
    assert "rat=LTE" in events(lines, "REGISTERED")[0]
    modem.deinit()


async def test_wait_registered_gives_up():
    steps = []
    for _ in range(3):
        steps += [ok("AT+CEREG?", b"+CEREG: 2,3"), ok("AT+CREG?", b"+CREG: 2,3")]
    modem, stream, _, _ = make_modem(steps)
    assert await modem.wait_registered(20) is False
    modem.deinit()


async def test_registration_urcs_report_changes():
    modem, stream, _, _ = make_modem()
    modem.at.start()
    changes = []
    modem.on_registration = changes.append
    stream.push(b'\r\n+CEREG: 1,"1100","5021",7\r\n')
    await until(lambda: changes == [True], what="registered")
    stream.push(b"\r\n+CEREG: 2\r\n\r\n+CREG: 0\r\n")
    await until(lambda: len(changes) == 2, what="lost")
    assert changes == [True, False], changes
    modem.deinit()


async def test_identity():
    modem, stream, _, _ = make_modem([ok("AT+CGSN", b"861234567890123"),
                                      ok("AT+CICCID", b"+ICCID: 898600700907A6019125")])
    assert await modem.identity() == ("861234567890123", "898600700907A6019125")
    modem.deinit()


async def test_queries_signal_cell_time_battery():
    modem, stream, _, _ = make_modem([
        ok("AT+CSQ", b"+CSQ: 27,99"),
        ok("AT+CPSI?", LTE_CPSI),
        ok("AT+CPSI?", b"+CPSI: NO SERVICE,Online"),
        ok("AT+CCLK?", b'+CCLK: "26/11/26,19:00:00+44"'),
        ok("AT+CBC", b"+CBC: 3.591V"),
    ])
    assert await modem.signal() == 27
    assert await modem.serving_cell() == {"rat": "LTE", "mcc": 546, "mnc": 1, "lac": 0x1100,
                                          "ci": 20513, "sig": -101}
    assert await modem.serving_cell() is None
    assert await modem.network_time() == 1795680000  # 2026-11-26 08:00 UTC
    assert await modem.battery_mv() == 3591
    assert stream.done()
    modem.deinit()


async def test_malformed_answers_give_none_and_a_log_line():
    modem, stream, _, lines = make_modem([
        ok("AT+CPSI?", b"+CPSI: LTE,Online,garbage"),
        ok("AT+CSQ", b"+CSQ: x"),
        answer("AT+CBC", ERROR),
    ])
    assert await modem.serving_cell() is None
    assert await modem.signal() == 99
    assert await modem.battery_mv() is None
    assert len(events(lines, "ERROR")) == 3, lines
    modem.deinit()


async def test_gnss_start_checks_first_because_cgps_1_errors_when_on():
    modem, stream, _, _ = make_modem([ok("AT+CGPS?", b"+CGPS: 1,1")])
    await modem.gnss_start()
    assert stream.done() and "AT+CGPS=1" not in stream.commands()
    stream.add(*ok("AT+CGPS?", b"+CGPS: 0,1"))
    stream.add(*ok("AT+CGPS=1"))
    await modem.gnss_start()
    assert stream.done()
    modem.deinit()


async def test_gnss_stop():
    modem, stream, _, _ = make_modem([ok("AT+CGPS?", b"+CGPS: 1,1"), ok("AT+CGPS=0"),
                                      ok("AT+CGPS?", b"+CGPS: 0,1")])
    await modem.gnss_stop()
    await modem.gnss_stop()  # already off: nothing sent
    assert stream.done()
    modem.deinit()


async def test_gnss_fix_with_and_without_fix_and_cgpsinfo_fallback():
    modem, stream, _, _ = make_modem([
        ok("AT+CGNSSINFO", b"+CGNSSINFO: ,,,,,,,,,,,,,,,"),
        ok("AT+CGNSSINFO",
           b"+CGNSSINFO: 2,05,00,00,6041.475467,N,02846.185792,E,080222,114731.0,85.9,0.0,,1.5,1.3,0.9"),
        answer("AT+CGNSSINFO", ERROR),
        ok("AT+CGPSINFO", b"+CGPSINFO: 3113.343286,N,12121.234064,E,250311,072809.3,44.1,0.0,0"),
    ])
    assert await modem.gnss_fix() is None
    fix = await modem.gnss_fix()
    assert fix["lat_e6"] == 60691258 and fix["lon_e6"] == 28769763, fix
    assert fix["acc"] == 7 and fix["alt"] == 86
    fix = await modem.gnss_fix()
    assert fix["lat_e6"] == 31222388, fix
    assert stream.done()
    modem.deinit()
