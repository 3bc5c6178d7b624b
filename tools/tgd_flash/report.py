"""The commissioning report: one line per check, pass or fail, saved as JSON."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .handset_config import write_atomically


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class CommissioningReport:
    device_id: str
    port: str
    started_at: str
    finished_at: str = ""
    fw_version: str = ""
    imei: str = ""
    iccid: str = ""
    technician: str = ""
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict:
        body = asdict(self)
        body["result"] = "PASS" if self.passed else "FAIL"
        return body

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())
        return path


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_line(check: Check) -> str:
    status = "PASS" if check.ok else "FAIL"
    detail = f"  {check.detail}" if check.detail else ""
    return f"  {status}  {check.name:<26}{detail}"


def render(report: CommissioningReport) -> str:
    lines = [
        f"Commissioning report: handset {report.device_id} on {report.port}",
        f"  firmware {report.fw_version or '?'}, IMEI {report.imei or '?'}, ICCID {report.iccid or '?'}",
        f"  {report.started_at} .. {report.finished_at}",
    ]
    lines += [check_line(c) for c in report.checks]
    lines.append(f"RESULT: {'PASS' if report.passed else 'FAIL'}")
    return "\n".join(lines)


def default_report_path(device_id: str, directory: Path | None = None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path(directory or ".") / f"commissioning-{device_id}-{stamp}.json"
