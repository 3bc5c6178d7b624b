# The firmware's frozen modules: what a handset's MicroPython image holds in flash.
#
# An ESP32 image (docs/technician.md):
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/abs/path/firmware/manifest.py
# takes the port's own modules (_boot, inisetup, flashbdev, ...) and asyncio, then the
# handset's two packages: tgd/ (the application, modem/ and uplink/) and boards/ (the
# ESP32 boards). main.py is not frozen: it is the script a board (or the host board's
# `micropython firmware/main.py`) runs, and it imports the rest. host/ is never frozen
# for a handset.
#
# The ESP32-faithful VM (`make esp32-vm`, a 32-bit unix port) takes this same file
# through firmware/host/manifest.py, with port_modules=False (the unix port has no
# boards/manifest.py) and the host board's own modules added there.
#
# This file is read by MicroPython's tools/makemanifest.py (CPython), never imported
# by the firmware: fwcheck and the flashing tool leave it out.
options.defaults(port_modules=True)  # noqa: F821 - makemanifest's globals

if options.port_modules:  # noqa: F821
    include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821 - it brings asyncio too
include("$(MPY_DIR)/extmod/asyncio")  # noqa: F821 - a second include is a no-op

# paths relative to this file's folder; every .py below them, as `import tgd.app` names it
package("tgd")  # noqa: F821
package("boards")  # noqa: F821
