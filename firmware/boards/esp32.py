# The ESP32 boards: the same roles as host/board_host.py, on machine.UART/Pin/ADC and
# the internal flash (littlefs2, mounted at / by MicroPython). A board module only
# gives the pin map (lilygo.py, generic.py).
import asyncio
import time

import machine

_UART_BAUD = 115200
_WDT_MS = 30000  # a hung firmware is reset, then resumes its alarm from the journal
_SLEEP_CAP_MS = _WDT_MS // 2  # one light sleep at most: the loop wakes to feed the watchdog

_RESETS = {}


def _reset_names():
    if not _RESETS:
        for name in ("PWRON_RESET", "HARD_RESET", "WDT_RESET", "DEEPSLEEP_RESET", "SOFT_RESET"):
            code = getattr(machine, name, None)
            if code is not None:
                _RESETS[code] = name.lower()
    return _RESETS


class Esp32Board:
    name = "esp32"
    # pin map, overridden by each board module; None = not wired
    UART_ID = 1
    MODEM_TX = None
    MODEM_RX = None
    MODEM_PWRKEY = None
    PWRKEY_ACTIVE_HIGH = True   # an NPN transistor: pin high pulls PWRKEY low
    MODEM_DTR = None            # high: the modem may sleep (AT+CSCLK=1)
    MODEM_RI = None             # RTC GPIO: the modem pulls it low for a URC (wakes light sleep)
    MODEM_FLIGHT = None         # high = normal operation
    BUTTON = None               # RTC GPIO to GND, internal pull-up: pressed reads 0 (wakes)
    MOTOR = None                # gate of an N-MOSFET: high = motor on
    BAT_ADC = None
    BAT_DIVIDER = 2.0           # VBAT -> 2 equal resistors -> ADC
    DARK_PINS = ()              # LEDs that must stay off: the handset never shows light

    def __init__(self):
        Pin = machine.Pin
        self._button = Pin(self.BUTTON, Pin.IN, Pin.PULL_UP) if self.BUTTON is not None else None
        self._motor = Pin(self.MOTOR, Pin.OUT, value=0) if self.MOTOR is not None else None
        self._pwrkey = None
        if self.MODEM_PWRKEY is not None:
            self._pwrkey = Pin(self.MODEM_PWRKEY, Pin.OUT, value=0 if self.PWRKEY_ACTIVE_HIGH else 1)
        self._dtr = Pin(self.MODEM_DTR, Pin.OUT, value=0) if self.MODEM_DTR is not None else None
        if self.MODEM_FLIGHT is not None:
            Pin(self.MODEM_FLIGHT, Pin.OUT, value=1)
        for p in self.DARK_PINS:
            Pin(p, Pin.OUT, value=0)
        self._adc = None
        if self.BAT_ADC is not None:
            self._adc = machine.ADC(Pin(self.BAT_ADC))
            self._adc.atten(machine.ADC.ATTN_11DB)
        self._wdt = None
        self._ri = Pin(self.MODEM_RI, Pin.IN) if self.MODEM_RI is not None else None
        self._wake_set = False

    def reset_cause(self):
        return _reset_names().get(machine.reset_cause(), "other")

    def log_level(self):
        return "info"

    def timing_scale(self):
        return 1.0

    def rtc_unix(self):
        return time.time()  # before 2020 (RTC not set) the clock ignores it

    def mount_flash(self):
        return ""  # MicroPython mounts the internal littlefs2 at /

    def open_uart(self):
        uart = machine.UART(self.UART_ID, baudrate=_UART_BAUD, tx=self.MODEM_TX, rx=self.MODEM_RX,
                            rxbuf=2048, timeout=0)
        return asyncio.StreamReader(uart)

    def pwrkey(self, pressed):
        if self._pwrkey is not None:
            self._pwrkey.value(1 if pressed == self.PWRKEY_ACTIVE_HIGH else 0)

    def dtr(self, level):
        if self._dtr is not None:
            self._dtr.value(1 if level else 0)

    def button_pressed(self):
        return self._button is not None and self._button.value() == 0

    def motor(self, on):
        if self._motor is not None:
            self._motor.value(1 if on else 0)

    def battery_mv(self):
        if self._adc is None:
            return None
        return int(self._adc.read_uv() * self.BAT_DIVIDER / 1000)

    def sleep_ms(self, ms):
        """Light sleep for up to ms; the button (ext0) or the modem's RI (ext1) wake it
        at once. Both must be RTC GPIOs (ESP32: ext0/ext1 only wake on those)."""
        if not self._wake_set:
            # not for memory: `esp32` is on the ESP32 port only, and the board modules
            # stay importable on a PC (tgd_flash.image_memory imports every module)
            import esp32
            if self._button is not None:
                esp32.wake_on_ext0(self._button, 0)  # pressed = low
            if self._ri is not None:
                esp32.wake_on_ext1((self._ri,), 0)  # ALL_LOW of one pin: RI low
            self._wake_set = True
        machine.lightsleep(min(ms, _SLEEP_CAP_MS))

    # -- updates over the air (tgd/ota/run.py) -------------------------------------------
    def reset(self):
        machine.reset()

    def ota_app_write(self, stage, size):
        """Route "app": the verified staging file (an app image) into the next OTA
        partition, 4096-byte blocks, then boot it next (set_boot). ESP-IDF's rollback
        boots the old one again unless ota_mark_valid() runs after the self-test."""
        import esp32
        part = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
        buf = bytearray(4096)
        block = 0
        with open(stage, "rb") as f:
            left = size
            while left > 0:
                n = f.readinto(buf)
                if not n:
                    raise OSError(5)  # EIO: the staging file is shorter than verified
                if n < len(buf):
                    for i in range(n, len(buf)):
                        buf[i] = 0xFF
                part.writeblocks(block, buf)
                block += 1
                left -= n
                self.watchdog_feed()
        part.set_boot()

    def ota_mark_valid(self):
        import esp32
        esp32.Partition.mark_app_valid_cancel_rollback()

    def watchdog_feed(self):
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=_WDT_MS)
        self._wdt.feed()
