# The ESP32 boards (docs/firmware.md "Modules"): esp32.py drives the pins, lilygo.py
# and generic.py give the pin map. main.py picks one from /board.txt.
