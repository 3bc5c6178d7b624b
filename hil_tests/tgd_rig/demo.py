"""`make demo`: the whole TGD system on one machine.

Starts the real server (SQLite under var/demo/, HTTP ingest, console on
http://127.0.0.1:8080), creates a demo operator account, provisions three emulated
handsets with the flashing tool's host mode (OPT-NC's three, placed in Nouméa),
boots their real firmware under MicroPython on the emulated LTE network, and lets
you press handset 1's alarm button from the terminal. Each step of the alarm is
printed as it happens; the console shows it live on the map.

    python -m tgd_rig.demo            # interactive: Enter = hold handset 1's button 2.5 s
    python -m tgd_rig.demo --auto     # scripted: press, wait for every channel, acknowledge, close
    python -m tgd_rig.demo --auto --alarms 2   # the same twice in a row on handset 1

Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from .emulated import EmulatedRig
from .rig import RigEvent

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "var" / "demo"
TRACKS = Path(__file__).resolve().parent / "data" / "tracks"
OPERATOR = "operateur"


@dataclass(frozen=True)
class DemoHandset:
    device_id: str
    person: str
    judicial_ref: str
    address: str
    lat: float
    lon: float
    indoor: bool = False
    track: str | None = None


HANDSETS = (
    DemoHandset("NC0001", "Mme A. (démo)", "TGD-2026-0001", "Quartier Latin, Nouméa",
                -22.2716, 166.4436, track="walk_quartier_latin.nmea"),
    DemoHandset("NC0002", "Mme B. (démo)", "TGD-2026-0002", "Magenta, Nouméa",
                -22.2631, 166.4719, indoor=True),
    DemoHandset("NC0003", "Mme C. (démo)", "TGD-2026-0003", "Anse Vata, Nouméa",
                -22.3002, 166.4439),
)

# The device log lines worth showing (docs/interfaces.md §2), and what they mean.
DEVICE_STEPS = {
    "ALARM": "alarm journaled in flash",
    "DIAL": "dialling the police",
    "CALL": "call",
    "FIX": "position",
    "ACKED": "the server's answer reached the handset",
    "SMS": "AML SMS",
    "VIBRATE": "vibration",
    "ALARM_END": "alarm ended on the handset",
    "HANGUP": "the handset hangs up",
}


class StepPrinter:
    """Prints the rig's events as readable steps, timed from the end of the hold."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.trigger_t: float | None = None
        self._lock = threading.Lock()
        self._states: dict[object, str] = {}   # alarm id -> last state printed

    def pressed(self, t: float) -> None:
        self.trigger_t = t + self.hold_s

    def __call__(self, event: RigEvent) -> None:
        text = self.describe(event)
        if text is None:
            return
        stamp = "        " if self.trigger_t is None else f"{event.t - self.trigger_t:+7.2f}s"
        with self._lock:
            print(f"  {stamp}  {event.device or '':7s} {text}", flush=True)

    def describe(self, event: RigEvent) -> str | None:
        data = event.data
        if event.source == "device" and event.kind == "log":
            line = data["line"]
            meaning = DEVICE_STEPS.get(line.event)
            if meaning is None:
                return None
            fields = " ".join(f"{k}={v}" for k, v in line.fields.items())
            return f"handset: {meaning} ({line.event} {fields})"
        if event.kind == "dial":
            return f"network: {data.get('modem')} dials {data.get('number')} (the police phone rings)"
        if event.kind == "call_answered":
            return (f"police: call answered, caller id {data.get('caller')} "
                    "(the special number: the operator knows who is calling)")
        if event.kind == "sms_delivered":
            return f"network: AML SMS from {data.get('sender')} delivered to the SMS gateway"
        if event.kind == "server_alarm":
            return f"server: alarm created (aid {data.get('aid')}) -> console rings"
        if event.kind == "server_position":
            fix = data.get("fix") or {}
            method = {"G": "GNSS", "C": "cell"}.get(fix.get("method"), fix.get("method"))
            return (f"server: {method} position {fix.get('lat'):.5f}, {fix.get('lon'):.5f} "
                    f"±{fix.get('acc')} m via {data.get('channel')}")
        if event.kind == "alarm_updated" and data.get("state") in ("acknowledged", "closed"):
            if self._states.get(data.get("alarm_id")) == data["state"]:
                return None  # every later message repeats the state: print the change only
            self._states[data.get("alarm_id")] = data["state"]
            return f"server: alarm {data['state']} by the police operator"
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--auto", action="store_true",
                        help="press, wait for every channel, acknowledge, close, exit")
    parser.add_argument("--port", type=int, default=8080, help="console port (default 8080)")
    parser.add_argument("--timing", choices=("realistic", "fast"), default="realistic",
                        help="emulated network delays (default: a real LTE network)")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="--auto: seconds to wait for each step")
    parser.add_argument("--alarms", type=int, default=1, choices=range(1, 11), metavar="N",
                        help="--auto: run N alarms in a row on handset 1 (1 to 10, default 1)")
    return parser.parse_args(argv)


def start_rig(args: argparse.Namespace) -> tuple[EmulatedRig, str]:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    rig = EmulatedRig(DEMO_DIR, timing=args.timing, police_answer_after_s=4.0,
                      server_port=args.port)
    rig.start()
    password = secrets.token_urlsafe(9)
    from tgd_server import auth, db
    from tgd_server.devices import assign_case

    with rig.server.app.app_context(), db.write_session() as session:
        auth.create_user(session, OPERATOR, "operator", password, display_name="Opérateur démo")
    for spec in HANDSETS:
        track = None
        if spec.track:
            from .emulator.track import Track

            track = Track.from_nmea(TRACKS / spec.track)
        rig.add_handset(spec.device_id, lat=spec.lat, lon=spec.lon, indoor=spec.indoor,
                        track=track)
        with rig.server.app.app_context(), db.write_session() as session:
            assign_case(session, spec.device_id, spec.judicial_ref, spec.person, spec.address,
                        "Démonstration: aucune personne réelle.")
    return rig, password


def boot_handsets(rig: EmulatedRig, timeout: float) -> None:
    print("Booting the three handsets (modem power-on, registration on OPT-NC 546-01)...",
          flush=True)
    for handset in rig.handsets.values():
        handset.power_on()
    for handset in rig.handsets.values():
        handset.expect("READY", timeout=timeout)
        special = handset.identity.special_number
        print(f"  {handset.device_id} ready, special number {special}", flush=True)


def run_auto(rig: EmulatedRig, printer: StepPrinter, timeout: float, alarms: int = 1) -> int:
    handset = rig.handset(HANDSETS[0].device_id)
    idle = True
    for n in range(1, alarms + 1):
        if alarms > 1:
            print(f"\nAlarm {n} of {alarms}:", flush=True)
        run_one_alarm(rig, handset, printer, timeout)
        if n < alarms:
            # The alarm owns its call: closed, the handset hangs up and is idle again.
            if _wait(lambda: not handset.modem.calls, timeout):
                print("  (the handset is idle again: no call up)", flush=True)
            else:
                idle = False
                print("  the handset's call is still up after the close", flush=True)
    found = rig.server_alarms(handset.device_id)
    states = ", ".join(sorted({a["state"] for a in found})) or "-"
    word = "alarm" if len(found) == 1 else "alarms"
    print(f"\nDone: {len(found)} {word} at the server for {handset.device_id} "
          f"(state {states}): every channel delivered.")
    return 0 if len(found) == alarms and idle else 1


def _wait(predicate, timeout: float) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_one_alarm(rig: EmulatedRig, handset, printer: StepPrinter, timeout: float) -> None:
    since = rig.events.mark()
    printer.pressed(handset.press(2.5, wait=False))
    alarm = rig.wait_server_alarm(handset.device_id, timeout=timeout, since=since)
    rig.wait_call(timeout=timeout, since=since)
    rig.wait_sms(timeout=timeout, since=since)
    rig.events.wait_for(lambda ev: ev.kind == "server_position" and
                        (ev.data.get("fix") or {}).get("method") == "G", timeout, since,
                        "a GNSS position at the server")
    alarm_id = alarm.data["alarm_id"]
    print("  (the operator acknowledges on the console)", flush=True)
    rig.server.ack_alarm(alarm_id)
    handset.expect("VIBRATE", timeout=timeout, pattern="help")
    print("  (the operator closes the alarm with a note)", flush=True)
    rig.server.close_alarm(alarm_id, note="Démonstration terminée")
    handset.expect("ALARM_END", timeout=timeout)


def run_interactive(rig: EmulatedRig, printer: StepPrinter) -> int:
    handset = rig.handset(HANDSETS[0].device_id)
    while True:
        try:
            answer = input("\n[Enter] hold handset 1's alarm button for 2.5 s, [q] quit: ")
        except EOFError:
            return 0
        if answer.strip().lower() in ("q", "quit", "exit"):
            return 0
        printer.pressed(handset.press(2.5, wait=False))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("tgd").setLevel(logging.WARNING)  # the steps below say what happens
    printer = StepPrinter(hold_s=2.0)
    print("TGD demo: server, SMS gateway, emulated network, three handsets. Ctrl-C stops.")
    rig = None
    try:
        rig, password = start_rig(args)
        rig.events.subscribe(printer)
        boot_handsets(rig, timeout=args.timeout)
        print(f"\nPolice console: {rig.server.base_url}/   "
              f"user '{OPERATOR}', password '{password}'")
        print(f"Device logs: {DEMO_DIR}/handsets/*/device.log")
        if args.auto:
            return run_auto(rig, printer, args.timeout, args.alarms)
        return run_interactive(rig, printer)
    except KeyboardInterrupt:
        print("\nStopping...")
        return 0
    finally:
        if rig is not None:
            rig.stop()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
