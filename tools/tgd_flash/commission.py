"""`selftest`: run firmware/selftest.py on the handset and write the commissioning report.

The board does the checks itself (modem, SIM, network, signal, GNSS, battery,
a signed ``test`` message to the server); the host shows each line as it
arrives, optionally confirms with the server, and saves the report as JSON
before deciding the exit code, so a failed commissioning is still on record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from . import fwbuild, onboard, report, serverapi
from .board import Board
from .errors import FlashToolError, ModemNotAnswering, NotProvisioned, SelftestFailed
from .handset_config import CONFIG_NAME
from .report import Check, CommissioningReport
from .serverapi import ServerTarget

MODEM_CHECK = "modem answers"


def run_selftest(
    port: str,
    *,
    out: TextIO,
    report_path: Path | None = None,
    report_dir: Path | None = None,
    server: ServerTarget | None = None,
    timeout_s: float = 180,
    technician: str = "",
    modem_boot_timeout_s: float = 0,
) -> tuple[CommissioningReport, Path]:
    started = report.utc_now()
    with Board(port) as board:
        onboard.require_firmware(board)
        cfg = board.read_json(CONFIG_NAME)
        if not isinstance(cfg, dict) or not cfg.get("device_id"):
            raise NotProvisioned(f"the handset on {port} is not provisioned: run `tgd-flash provision` first")
        manifest = board.read_json(fwbuild.MANIFEST)
        rep = CommissioningReport(
            device_id=str(cfg["device_id"]),
            port=port,
            started_at=started,
            fw_version=manifest.get("fw", "") if isinstance(manifest, dict) else "",
            technician=technician,
        )
        print(f"self-test of handset {rep.device_id} on {port} (takes up to a minute or two)", file=out, flush=True)

        def on_result(result: dict) -> None:
            if "check" in result:
                check = Check(str(result["check"]), bool(result.get("ok")), str(result.get("detail", "")))
                rep.checks.append(check)
                print(report.check_line(check), file=out, flush=True)
            info = result.get("info")
            if isinstance(info, dict):
                rep.imei = str(info.get("imei", rep.imei) or rep.imei)
                rep.iccid = str(info.get("iccid", rep.iccid) or rep.iccid)
                rep.fw_version = str(info.get("fw", rep.fw_version) or rep.fw_version)

        try:
            results = onboard.run_results(
                board, f"run(boot_timeout_ms={int(modem_boot_timeout_s * 1000)})", on_result, timeout_s
            )
        except FlashToolError as exc:
            results = []
            rep.checks.append(Check("self-test completed", False, str(exc)))
        if results and not any(r.get("done") for r in results):
            rep.checks.append(Check("self-test completed", False, "the board stopped before the end"))
        if not rep.checks:
            rep.checks.append(Check("self-test completed", False, "no result from the board"))

    if server is not None:
        rep.checks.append(_server_check(server, rep.device_id, started))
    rep.finished_at = report.utc_now()
    path = rep.save(report_path or report.default_report_path(rep.device_id, report_dir))
    print(report.render(rep), file=out)
    print(f"report saved to {path}", file=out)
    if not rep.passed:
        modem = next((c for c in rep.checks if c.name == MODEM_CHECK), None)
        if modem is not None and not modem.ok:
            raise ModemNotAnswering(f"the modem does not answer ({modem.detail}); report in {path}")
        failed = ", ".join(c.name for c in rep.checks if not c.ok)
        raise SelftestFailed(f"self-test FAILED ({failed}); report in {path}")
    return rep, path


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _server_check(server: ServerTarget, device_id: str, started_at: str) -> Check:
    """The server knows the handset and heard from it during this self-test."""
    name = "server recorded the test"
    try:
        device = serverapi.get_device(server, device_id)
    except FlashToolError as exc:
        return Check(name, False, str(exc))
    if device is None:
        return Check(name, False, f"{device_id} is not registered on {server.base_url}")
    seen_text = device.get("last_test_at") or device.get("last_seen_at")
    seen = _parse_time(seen_text)
    started = _parse_time(started_at)
    if seen is None or started is None or seen < started:
        return Check(name, False, f"no message from {device_id} since {started_at} (last: {seen_text})")
    return Check(name, True, f"message received at {seen_text}")
