"""SIM7600 emulator and simulated mobile network (docs/emulator.md, docs/interfaces.md §4).

    net = Network(timing=Timing.fast(0.01)); net.start()
    police = net.add_police("17", answer_after_s=3.0)
    modem = Sim7600Emulator(net, msisdn="+687751001", track=Track.fixed(-22.27, 166.45))
    modem.open(); modem.power_on()       # the host opens modem.port
"""

from .cells import Cell, load_cells
from .errors import EmulatorError, UnknownFault
from .faults import FAULTS
from .modem import Sim7600Emulator
from .network import EventTimeout, Network, NetworkNotStarted, PoliceCall, PoliceEndpoint
from .timing import Timing
from .track import Track, TrackError

__all__ = [
    "FAULTS",
    "Cell",
    "EmulatorError",
    "EventTimeout",
    "Network",
    "NetworkNotStarted",
    "PoliceCall",
    "PoliceEndpoint",
    "Sim7600Emulator",
    "Timing",
    "Track",
    "TrackError",
    "UnknownFault",
    "load_cells",
]
