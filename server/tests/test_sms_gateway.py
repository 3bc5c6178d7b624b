"""The SMS gateway against the SIM7600 emulator, storing into the real server database.

Each test builds a simulated network with a gateway modem (the server's) and the
handsets' modems; handsets submit SMS to the network, which delivers them to the
gateway modem (+CMTI), where `SmsGateway` reads them through its pty.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tgd_rig.emulator import Network, Sim7600Emulator, Timing
from tgd_server.models import Alarm, InboundSms, Position
from tgd_server.sms.aml import build_aml
from tgd_server.sms.gateway import GatewayConfig, SmsGateway
from tgd_server.sms.ingest_sms import ingest_aml_sms
from tgd_server.sms.modem import AtModem, ModemRebooted

GATEWAY_NUMBER = "+687700100"
WAIT_S = 20.0  # generous bound: a healthy run needs well under a second


def aml_text(lat=-22.2741, lon=166.4488, rd=12, method="G"):
    return build_aml(lat=lat, lon=lon, radius_m=rd,
                     time_of_positioning=datetime.now(UTC).replace(microsecond=0),
                     confidence_pct=68, method=method, imsi="546010000000001",
                     imei="861234567890123", mcc="546", mnc="01")


class Rig:
    """A network, the gateway modem, senders, and the gateway thread."""

    def __init__(self, app, capacity: int = 30):
        self.app = app
        self.factory = app.extensions["tgd_sessionmaker"]
        self.net = Network(timing=Timing.fast(0.01))
        self.net.start()
        self.gateway_modem = Sim7600Emulator(self.net, msisdn=GATEWAY_NUMBER,
                                             sms_capacity=capacity, name="gateway")
        self.gateway_modem.open(pwrkey_fifo=False)
        self.gateway_modem.power_on()
        self.senders: dict[str, Sim7600Emulator] = {}
        self.deliver_hook = None  # callable(sender, text, at) run before storing
        self.after_store_hook = None  # callable() run once the SMS is committed
        self.gateway: SmsGateway | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mr = 0
        self.net.wait_event("modem_boot", modem=GATEWAY_NUMBER)

    def sender(self, number: str) -> Sim7600Emulator:
        if number not in self.senders:
            modem = Sim7600Emulator(self.net, msisdn=number, name=number)
            modem.open(pwrkey_fifo=False)
            self.senders[number] = modem
        return self.senders[number]

    def send(self, number: str, text: str) -> None:
        """`number` submits an SMS to the gateway's number (the SMSC accepted it)."""
        modem = self.sender(number)
        self._mr += 1
        self.net.call_in_loop(self.net.submit_sms, modem, GATEWAY_NUMBER, text, self._mr, False)

    def deliver(self, sender: str, text: str, received_at: datetime):
        if self.deliver_hook is not None:
            self.deliver_hook(sender, text, received_at)
        result = ingest_aml_sms(sender, text, received_at, factory=self.factory)
        if self.after_store_hook is not None:
            self.after_store_hook()
        return result

    def start_gateway(self, **config) -> SmsGateway:
        settings = {"command_timeout_s": 1.0, "list_timeout_s": 2.0, "boot_wait_s": 2.0,
                    "sweep_interval_s": 30.0, "backoff_s": (0.05, 0.1, 0.2), **config}
        self.gateway = SmsGateway(AtModem(self.gateway_modem.port), self.deliver,
                                  GatewayConfig(**settings))
        self._thread = threading.Thread(target=self.gateway.run, args=(self._stop,),
                                        name="sms-gateway", daemon=True)
        self._thread.start()
        return self.gateway

    def wait_ready(self, timeout: float = WAIT_S) -> None:
        """Until the gateway has initialised the modem and swept once."""
        deadline = time.monotonic() + timeout
        while self.gateway.stats.sweeps < 1 and time.monotonic() < deadline:
            time.sleep(0.02)

    def wait_stored(self, count: int, timeout: float = WAIT_S) -> list[InboundSms]:
        deadline = time.monotonic() + timeout
        while True:
            with self.factory() as session:
                rows = session.scalars(select(InboundSms).order_by(InboundSms.id)).all()
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)

    def wait_modem_empty(self, timeout: float = WAIT_S) -> int:
        deadline = time.monotonic() + timeout
        while self.gateway_modem.sms_store.used and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.gateway_modem.sms_store.used

    def count(self, model, *where) -> int:
        with self.factory() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for modem in [self.gateway_modem, *self.senders.values()]:
            modem.close()
        self.net.stop()

    def transcript(self) -> str:
        return str(getattr(self.gateway_modem, "transcript", ""))[-3000:]


@pytest.fixture
def rig(app):
    made: list[Rig] = []

    def make(**kwargs) -> Rig:
        made.append(Rig(app, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_aml_sms_from_a_handset_opens_its_alarm_with_the_position(rig, handset):
    r = rig()
    r.start_gateway()
    r.send(handset.special_number, aml_text(rd=9))
    rows = r.wait_stored(1)
    assert [(row.sender, row.status) for row in rows] == [(handset.special_number, "accepted")], rows[0].reason
    assert r.count(Alarm, Alarm.device_id == handset.device_id) == 1
    with r.factory() as session:
        position = session.scalars(select(Position)).one()
    assert (position.method, position.acc_m, position.channel) == ("G", 9, "sms")
    assert r.wait_modem_empty() == 0, "a stored SMS must be deleted from the modem"


def test_messages_that_arrived_before_the_gateway_started_are_read(rig, handset, make_handset):
    r = rig()
    other = make_handset()
    r.send(handset.special_number, aml_text())
    r.send(other.special_number, aml_text(lat=-22.30))
    r.send("+687999999", "hello")
    for _ in range(3):
        r.net.wait_event("sms_received", modem=GATEWAY_NUMBER, timeout=WAIT_S,
                         since=0.0)
    deadline = time.monotonic() + WAIT_S
    while r.gateway_modem.sms_store.used < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert r.gateway_modem.sms_store.used == 3
    gateway = r.start_gateway()
    rows = r.wait_stored(3)
    assert sorted(row.status for row in rows) == ["accepted", "accepted", "unknown_sender"]
    assert r.count(Alarm) == 2
    assert r.wait_modem_empty() == 0
    assert gateway.stats.sweeps >= 1


def test_many_sms_at_once_are_all_stored_exactly_once(rig, make_handset):
    r = rig()
    r.start_gateway()
    handsets = [make_handset() for _ in range(4)]
    for i in range(24):
        r.send(handsets[i % 4].special_number, aml_text(lat=-22.27 - i / 1000))
    rows = r.wait_stored(24)
    assert len(rows) == 24 and all(row.status == "accepted" for row in rows)
    assert r.count(Alarm) == 4 and r.count(Position) == 24
    assert r.wait_modem_empty() == 0


def test_storage_full_nothing_lost_the_network_delivers_the_rest_after_draining(rig, handset):
    r = rig(capacity=5)
    for i in range(8):
        r.send(handset.special_number, aml_text(lat=-22.27 - i / 1000))
    deadline = time.monotonic() + WAIT_S
    while r.gateway_modem.sms_store.used < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert r.gateway_modem.sms_store.used == 5  # full: the SMSC keeps the other 3
    r.start_gateway()
    rows = r.wait_stored(8)
    assert len(rows) == 8 and r.count(Position) == 8 and r.count(Alarm) == 1
    assert r.wait_modem_empty() == 0


def test_modem_reboot_in_the_middle_of_a_read(rig, handset):
    r = rig()
    gateway = r.start_gateway()
    r.wait_ready()
    reboot_once = threading.Event()
    real_command = AtModem.command

    def command_with_reboot(modem_self, cmd, timeout=5.0):
        # The first read of a stored message (+CMTI's AT+CMGR, or a sweep's AT+CMGL,
        # whichever comes first) goes out to a modem that is resetting.
        reading = cmd.startswith(("+CMGR", "+CMGL"))
        if reading and r.gateway_modem.sms_store.used and not reboot_once.is_set():
            reboot_once.set()
            r.gateway_modem.inject("reboot")
        return real_command(modem_self, cmd, timeout)

    gateway.modem.command = command_with_reboot.__get__(gateway.modem)
    r.send(handset.special_number, aml_text())
    rows = r.wait_stored(1)
    assert [row.status for row in rows] == ["accepted"], r.transcript()
    assert reboot_once.is_set() and gateway.stats.reboots + gateway.stats.resyncs >= 2
    assert r.wait_modem_empty() == 0
    r.send(handset.special_number, aml_text(lat=-22.28))  # initialised again: +CMTI works
    assert len(r.wait_stored(2)) == 2


def test_reboot_after_storing_before_deleting_does_not_store_twice(rig, handset):
    r = rig()
    gateway = r.start_gateway()
    stored_once = threading.Event()

    def reboot_after_store():
        if not stored_once.is_set():
            stored_once.set()
            r.gateway_modem.inject("reboot")  # committed, and the modem resets before AT+CMGD

    r.after_store_hook = reboot_after_store
    r.send(handset.special_number, aml_text())
    r.net.wait_event("sms_received", modem=GATEWAY_NUMBER, timeout=WAIT_S)
    assert len(r.wait_stored(1)) == 1
    assert r.wait_modem_empty() == 0, r.transcript()
    assert stored_once.is_set() and gateway.stats.reboots + gateway.stats.resyncs >= 2
    assert r.count(InboundSms) == 1 and r.count(Position) == 1


def test_garbage_split_writes_and_urcs_inside_answers(rig, handset):
    r = rig()
    r.gateway_modem.inject("split_writes", max_chunk=3, max_gap_s=0.002)
    gateway = r.start_gateway()
    r.wait_ready()
    r.gateway_modem.inject("garbage", length=40)
    r.gateway_modem.inject("garbage", data="\r\n+CMTI: \"SM\r\nOK\r\n\x00\xff\r\n")
    r.gateway_modem.inject("urc_in_response", urc="+CPIN: READY", count=3)
    for i in range(5):
        r.send(handset.special_number, aml_text(lat=-22.27 - i / 1000))
        r.gateway_modem.inject("garbage", length=8)
    rows = r.wait_stored(5)
    assert len(rows) == 5, r.transcript()
    assert all(row.status == "accepted" for row in rows), [row.reason for row in rows]
    assert r.wait_modem_empty() == 0
    # Where the noise landed decides what the gateway saw (a stray line, a spoiled
    # answer and a resynchronisation, or nothing); what matters is that nothing was lost.
    assert gateway.stats.delivered == 5


def test_database_failure_keeps_the_sms_on_the_modem_until_it_is_stored(rig, handset):
    r = rig()
    failures = []

    def database_down_once(sender, text, at):
        if not failures:
            failures.append(sender)
            raise ConnectionError("database unreachable")

    r.deliver_hook = database_down_once
    gateway = r.start_gateway(sweep_interval_s=0.3)
    r.send(handset.special_number, aml_text())
    rows = r.wait_stored(1)
    assert failures and [row.status for row in rows] == ["accepted"]
    assert gateway.stats.delivery_failures == 1
    assert r.wait_modem_empty() == 0


def test_unknown_sender_and_free_text_are_kept_for_review(rig, handset):
    r = rig()
    r.start_gateway()
    r.send("+687999999", aml_text())
    r.send(handset.special_number, "Au secours")
    rows = r.wait_stored(2)
    by_sender = {row.sender: row for row in rows}
    assert by_sender["+687999999"].status == "unknown_sender"
    assert by_sender[handset.special_number].status == "review"
    assert by_sender[handset.special_number].text == "Au secours"
    assert r.count(Alarm) == 0


def test_tgd_server_sms_gateway_command_serves_until_sigterm(tmp_path):
    """The real console script, in its own process, on the server's SQLite database."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from sqlalchemy.orm import sessionmaker

    from tgd_server.db import create_all, make_engine
    from tgd_server.devices import register_device

    url = f"sqlite:///{tmp_path / 'tgd.sqlite3'}"
    engine = make_engine(url)
    create_all(engine)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as session:
        register_device(session, {"device_id": "NC0042", "special_number": "+687751042",
                                  "key": "22" * 32, "fw_version": "1.0.0"})
        session.commit()
    net = Network(timing=Timing.fast(0.01))
    net.start()
    modem = Sim7600Emulator(net, msisdn=GATEWAY_NUMBER, name="gateway")
    handset_modem = Sim7600Emulator(net, msisdn="+687751042")
    process = None
    try:
        modem.open(pwrkey_fifo=False)
        modem.power_on()
        handset_modem.open(pwrkey_fifo=False)
        net.wait_event("modem_boot", modem=GATEWAY_NUMBER)
        script = Path(sys.executable).parent / "tgd-server"
        env = {**os.environ, "TGD_DATABASE_URL": url, "TGD_VAR_DIR": str(tmp_path),
               "TGD_SECRET_KEY": "test"}
        process = subprocess.Popen([str(script), "sms-gateway", "--port", modem.port],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        net.call_in_loop(net.submit_sms, handset_modem, GATEWAY_NUMBER, aml_text(), 1, False)
        deadline = time.monotonic() + WAIT_S
        rows: list = []
        while not rows and time.monotonic() < deadline and process.poll() is None:
            with factory() as session:
                rows = session.scalars(select(InboundSms)).all()
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=WAIT_S)[0].decode(errors="replace")
        assert [(row.sender, row.status) for row in rows] == [("+687751042", "accepted")], output
        assert process.returncode == 0, output
        assert "gateway stopped" in output
        import json

        status = json.loads((tmp_path / "sms-gateway.json").read_text())
        assert status["state"] == "stopped" and status["stats"]["delivered"] == 1
    finally:
        if process is not None and process.poll() is None:
            process.kill()
        modem.close()
        handset_modem.close()
        net.stop()
        engine.dispose()


def test_sms_whose_cmti_was_lost_while_the_modem_hung_is_found_by_a_sweep(rig, handset):
    r = rig()
    gateway = r.start_gateway(sweep_interval_s=1.0)
    r.wait_ready()
    r.gateway_modem.inject("silence", duration_s=1.5)  # its +CMTI goes nowhere
    r.send(handset.special_number, aml_text())
    r.net.wait_event("sms_received", modem=GATEWAY_NUMBER, timeout=WAIT_S)
    rows = r.wait_stored(1)
    assert [row.status for row in rows] == ["accepted"], r.transcript()
    assert r.wait_modem_empty() == 0
    assert gateway.stats.sweeps >= 2


def _wait_status(path: Path, state: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while True:
        status = json.loads(path.read_text()) if path.exists() else {}
        if status.get("state") == state or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_a_late_answer_never_shifts_the_answers_of_later_commands(rig):
    """An answer still on its way when the gateway resynchronises (a command given up
    on after a timeout or a reboot) is not taken for the answer to `AT`: otherwise
    every later command reads its predecessor's answer (AT+CPMS? finding no +CPMS line,
    the failure seen in CI)."""
    r = rig()
    modem = AtModem(r.gateway_modem.port)
    modem.open()
    try:
        for _ in range(3):  # the modem may still be saying RDY (boot): then again
            try:
                assert modem.resync()
                break
            except ModemRebooted:
                continue
        modem._write(b"AT+CMGL=\"ALL\"\r")  # given up on: its OK arrives later
        assert modem.resync()
        for _ in range(3):
            used, capacity = modem.storage_use()
            assert capacity > 0 and used == 0
    finally:
        modem.close()


def test_gateway_in_the_server_process_feeds_the_live_console_events(app, handset):
    """`tgd-server run --sms-gateway`: the console's event bus sees the SMS alarm at once."""
    from tgd_server import events
    from tgd_server.sms.cli import start_in_process

    net = Network(timing=Timing.fast(0.01))
    net.start()
    modem = Sim7600Emulator(net, msisdn=GATEWAY_NUMBER, name="gateway")
    sender = Sim7600Emulator(net, msisdn=handset.special_number)
    stop = None
    try:
        modem.open(pwrkey_fifo=False)
        modem.power_on()
        sender.open(pwrkey_fifo=False)
        net.wait_event("modem_boot", modem=GATEWAY_NUMBER)
        with events.subscribe() as sub:
            stop = start_in_process(app, modem.port)
            net.call_in_loop(net.submit_sms, sender, GATEWAY_NUMBER, aml_text(), 1, False)
            deadline = time.monotonic() + WAIT_S
            seen = []
            while "alarm.created" not in seen and time.monotonic() < deadline:
                event = sub.get(timeout=0.5)
                if event is not None:
                    seen.append(event["type"])
        assert "alarm.created" in seen, seen
        # The status file says "ok" once the sweep that stored the SMS has finished
        # (the alarm event comes from inside that sweep, a moment earlier).
        status = _wait_status(Path(app.config["TGD_VAR_DIR"]) / "sms-gateway.json", "ok")
        assert status["state"] == "ok" and status["last_ok_at"] and status["port"] == modem.port
    finally:
        if stop is not None:
            stop.set()
        time.sleep(0.6)  # the thread notices within one step
        modem.close()
        sender.close()
        net.stop()


def test_tgd_server_run_with_the_gateway_serves_web_and_sms(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from sqlalchemy.orm import sessionmaker

    from tgd_server.db import make_engine
    from tgd_server.devices import register_device

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        http_port = s.getsockname()[1]
    url = f"sqlite:///{tmp_path / 'tgd.sqlite3'}"
    net = Network(timing=Timing.fast(0.01))
    net.start()
    modem = Sim7600Emulator(net, msisdn=GATEWAY_NUMBER, name="gateway")
    handset_modem = Sim7600Emulator(net, msisdn="+687751043")
    process = None
    engine = make_engine(url)
    try:
        modem.open(pwrkey_fifo=False)
        modem.power_on()
        handset_modem.open(pwrkey_fifo=False)
        net.wait_event("modem_boot", modem=GATEWAY_NUMBER)
        script = Path(sys.executable).parent / "tgd-server"
        env = {**os.environ, "TGD_DATABASE_URL": url, "TGD_VAR_DIR": str(tmp_path),
               "TGD_SECRET_KEY": "test"}
        process = subprocess.Popen(
            [str(script), "run", "--init-db", "--port", str(http_port), "--sms-gateway",
             modem.port], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT_S
        answered = False
        while not answered and time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http_port}/connexion", timeout=1)
                answered = True
            except OSError:
                time.sleep(0.1)
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        with factory() as session:
            register_device(session, {"device_id": "NC0043", "special_number": "+687751043",
                                      "key": "33" * 32, "fw_version": "1.0.0"})
            session.commit()
        net.call_in_loop(net.submit_sms, handset_modem, GATEWAY_NUMBER, aml_text(), 1, False)
        rows: list = []
        while not rows and time.monotonic() < deadline and process.poll() is None:
            with factory() as session:
                rows = session.scalars(select(InboundSms)).all()
            time.sleep(0.1)
        assert answered and [(r.sender, r.status) for r in rows] == [("+687751043", "accepted")]
    finally:
        if process is not None:
            process.terminate()
            output = process.communicate(timeout=WAIT_S)[0].decode(errors="replace")
            if process.returncode not in (0, -15):
                print(output)
        modem.close()
        handset_modem.close()
        net.stop()
        engine.dispose()
