# The modem layer (docs/firmware-modem.md): the AT engine (at.py), the parsers of
# its answers (atparse.py), the SIM7600 driver (sim7600.py) and their typed errors.
