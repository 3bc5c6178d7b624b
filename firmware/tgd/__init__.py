# The handset firmware (docs/firmware.md): the application, its modem driver (modem/)
# and its transports to the server (uplink/). Frozen as a package by manifest.py.
