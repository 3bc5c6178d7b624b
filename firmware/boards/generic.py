# A generic ESP32 DevKit wired to a SIM7600 breakout (e.g. SIM7600E-H module board):
# UART2 on its default pins, PWRKEY through an NPN transistor, button and motor as on
# the LilyGO map. See docs/firmware.md for the wiring table.
from boards.esp32 import Esp32Board


class GenericBoard(Esp32Board):
    name = "generic-esp32-sim7600"
    UART_ID = 2
    MODEM_TX = 17          # ESP32 TX2 -> modem RXD (through a 1.8 V level shifter)
    MODEM_RX = 16          # modem TXD -> ESP32 RX2
    MODEM_PWRKEY = 5       # NPN transistor: high = PWRKEY pulled low
    PWRKEY_ACTIVE_HIGH = True
    MODEM_DTR = 23         # high: the modem may sleep (AT+CSCLK=1)
    MODEM_RI = 35          # modem RI (input-only RTC GPIO): a URC wakes the ESP32
    MODEM_FLIGHT = None
    BUTTON = 33            # an RTC GPIO: the button wakes light sleep
    MOTOR = 19
    BAT_ADC = 34           # VBAT through a 100k/100k divider
    DARK_PINS = (2,)       # the DevKit's blue LED
