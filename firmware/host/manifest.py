# The ESP32-faithful VM's frozen modules (`make esp32-vm`, docs/firmware.md "Memory"):
# the handset's manifest, as an ESP32 image takes it, plus the host board's own modules.
#
# On a handset the board module (boards.lilygo, boards.esp32) is frozen into flash with
# the rest; on the VM the host board plays that part, so it is frozen here too and its
# code costs flash, not heap, as a board's does. These modules (firmware/host/) never
# reach a handset: firmware/manifest.py freezes tgd/ and boards/ only, and tgd-flash
# uploads main.py and what that manifest lists. They stay top-level modules: main.py
# imports them on a PC only.
include("../manifest.py", port_modules=False)  # noqa: F821 - makemanifest's globals

module("board_host.py")  # noqa: F821
module("flash_image.py")  # noqa: F821
# tools/heap_probe.py: main.py starts it when TGD_HEAP_PROBE is set (frozen: it costs
# no heap for its code, as the firmware's code costs none)
module("heap_probe.py")  # noqa: F821
