"""`selftest`: run firmware/tgd/selftest.py on the handset and write the commissioning report.

The board does the checks itself (modem, SIM, network, signal, GNSS, battery,
a signed ``test`` message to the server); the host shows each line as it
arrives, optionally confirms with the server, and saves the report as JSON
before deciding the exit code, so a failed commissioning is still on record.
"""

from __future__ import annotations

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
        seen_before = _last_seen(server, str(cfg["device_id"]))[1] if server is not None else None
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
        except ModemNotAnswering as exc:
            results = []
            rep.checks.append(Check(MODEM_CHECK, False, str(exc)))
        except FlashToolError as exc:
            results = []
            rep.checks.append(Check("self-test completed", False, str(exc)))
        if results and not any(r.get("done") for r in results):
            rep.checks.append(Check("self-test completed", False, "the board stopped before the end"))
        if not rep.checks:
            rep.checks.append(Check("self-test completed", False, "no result from the board"))

    if server is not None:
        rep.checks.append(_server_check(server, rep.device_id, seen_before))
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


def _last_seen(server: ServerTarget, device_id: str) -> tuple[bool, str | None, str]:
    """(registered, last_seen_at, problem) as the server sees the handset now."""
    try:
        device = serverapi.get_device(server, device_id)
    except FlashToolError as exc:
        return False, None, str(exc)
    if device is None:
        return False, None, f"{device_id} is not registered on {server.base_url}"
    return True, device.get("last_seen_at"), ""


def _server_check(server: ServerTarget, device_id: str, before: str | None) -> Check:
    """The server heard from the handset during the self-test.

    Compares the server's own last_seen_at before and after, so the bench PC's
    clock does not matter.
    """
    name = "server recorded the test"
    registered, after, problem = _last_seen(server, device_id)
    if not registered:
        return Check(name, False, problem)
    if after is None or after == before:
        return Check(name, False, f"no message from {device_id} during the test (last: {before})")
    return Check(name, True, f"message received at {after}")
