# LilyGO T-SIM7600X (ESP32-WROVER-B + SIM7600): modem pins from LilyGO's own
# examples (Xinyuan-LilyGO/T-SIM7600X, examples/*/utilities.h). The button and the
# vibration motor are ours, on GPIOs the board leaves free. See docs/firmware.md.
from boards.esp32 import Esp32Board


class LilygoBoard(Esp32Board):
    name = "lilygo-t-sim7600x"
    MODEM_TX = 27          # ESP32 TX -> modem RX
    MODEM_RX = 26          # modem TX -> ESP32 RX
    MODEM_PWRKEY = 4       # through the board's transistor: high = PWRKEY pulled low
    PWRKEY_ACTIVE_HIGH = True
    MODEM_DTR = 32         # high: the modem may sleep (AT+CSCLK=1)
    MODEM_FLIGHT = 25      # high: radio on
    MODEM_RI = 33          # RTC GPIO: low pulse on a URC wakes the ESP32 (MODEM_STATUS 34 unused)
    BUTTON = 13            # alert button to GND (internal pull-up); an RTC GPIO so that it
                           # wakes light sleep (shared with the unused SD slot's CS: no card)
    MOTOR = 19             # N-MOSFET gate, motor across VBAT with a flyback diode
    BAT_ADC = 35           # VBAT through the board's 100k/100k divider (check the revision)
    DARK_PINS = (12,)      # the board's LED: kept off, the handset never lights up
