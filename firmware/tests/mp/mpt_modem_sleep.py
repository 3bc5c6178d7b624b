# heapsize: 256k  (tests and helpers are compiled in the heap too)
# The driver's DTR, in one place: low 20 ms before any command, high once the AT engine
# has been idle dtr_idle_ms (AT+CSCLK=1 first, at the first idle moment), never high
# while an answer is awaited, a call is up or an alarm holds it awake.
import asyncio
import time

from scripted_modem import init_steps, make_modem, ok

IDLE_MS = 40


class TimedBoard:
    """The DTR line with the time of each level, and the time of each command written."""

    def __init__(self, board, stream):
        self.levels = board.dtr_levels
        self.times = []
        self.writes = []
        self._stream_write = stream.write
        board.dtr = self.dtr
        stream.write = self.write

    def dtr(self, level):
        self.levels.append(level)
        self.times.append(time.ticks_ms())

    def write(self, data):
        self.writes.append(time.ticks_ms())
        self._stream_write(data)


async def started(extra=()):
    modem, stream, board, lines = make_modem([ok("AT")] + init_steps() + list(extra))
    timed = TimedBoard(board, stream)
    modem.dtr_idle_ms = IDLE_MS
    await modem.start()
    return modem, stream, timed, lines


async def until(cond, ms=2000):
    waited = 0
    while not cond() and waited < ms:
        await asyncio.sleep_ms(5)
        waited += 5
    return cond()


async def test_idle_sends_csclk_once_then_raises_dtr():
    modem, stream, board, _ = await started([ok("AT+CSCLK=1")])
    assert board.levels == [0]
    assert await until(lambda: board.levels == [0, 1]), board.levels
    assert stream.commands().count("AT+CSCLK=1") == 1 and stream.done()
    # the modem's last byte was at least IDLE_MS before DTR went high
    assert time.ticks_diff(board.times[-1], modem.at.last_rx_ms) >= IDLE_MS
    await asyncio.sleep_ms(3 * IDLE_MS)
    assert board.levels == [0, 1]  # and it stays high while nothing happens
    modem.deinit()


async def test_a_command_lowers_dtr_20_ms_before_it_is_written():
    modem, stream, board, _ = await started([ok("AT+CSCLK=1"), ok("AT+CSQ", b"+CSQ: 20,99")])
    assert await until(lambda: board.levels == [0, 1])
    assert await modem.signal() == 20
    assert board.levels == [0, 1, 0]
    assert time.ticks_diff(board.writes[-1], board.times[-1]) >= 20
    assert await until(lambda: board.levels == [0, 1, 0, 1])  # idle again: high again
    assert stream.commands().count("AT+CSCLK=1") == 1  # once per modem start
    modem.deinit()


async def test_dtr_stays_low_while_an_answer_is_awaited_or_an_alarm_holds_it():
    modem, stream, board, _ = await started([ok("AT+CSCLK=1")])
    assert await until(lambda: board.levels == [0, 1])
    modem.stay_awake(True)  # an alarm opened: low at once, without a command
    assert board.levels == [0, 1, 0]
    await asyncio.sleep_ms(4 * IDLE_MS)
    assert board.levels == [0, 1, 0]
    modem.stay_awake(False)
    assert await until(lambda: board.levels == [0, 1, 0, 1])
    w = modem.at.urc_waiter("+HTTPACTION:")  # an HTTP answer on its way
    modem.prewake()
    assert modem.busy()
    await asyncio.sleep_ms(4 * IDLE_MS)
    assert board.levels == [0, 1, 0, 1, 0]
    w.cancel()
    assert await until(lambda: board.levels[-1] == 1)
    modem.deinit()


async def test_no_dtr_high_during_a_call():
    modem, stream, board, _ = await started([ok("AT+CSCLK=1")])
    assert await until(lambda: board.levels == [0, 1])
    modem.prewake()
    modem.call_state = "active"
    await asyncio.sleep_ms(4 * IDLE_MS)
    assert board.levels == [0, 1, 0]
    modem.call_state = "ended"
    assert await until(lambda: board.levels == [0, 1, 0, 1])
    modem.deinit()


async def test_a_rebooted_modem_gets_csclk_again():
    modem, stream, board, _ = await started([ok("AT+CSCLK=1")])
    assert await until(lambda: board.levels == [0, 1])
    for step in init_steps() + [ok("AT+CSCLK=1")]:
        stream.add(*step)
    stream.push(b"\r\nRDY\r\n")  # it restarted on its own: the driver re-initialises it
    assert await until(lambda: stream.commands().count("AT+CSCLK=1") == 2), stream.commands()
    assert await until(lambda: board.levels[-1] == 1)
    modem.deinit()
