"""Server ingest benchmark: the same as `tgd-server bench` (see docs/benchmarks.md).

    .venv/bin/python bench/ingest_bench.py --devices 10000 [--database-url ...] [--workers 2]
"""

import sys

from tgd_server.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
