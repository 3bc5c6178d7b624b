#!/usr/bin/env python3
"""The technicians' tool: `python tools/flash.py <detect|flash|provision|selftest> ...`.

Same as the `tgd-flash` console script; see docs/technician.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tgd_flash.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
