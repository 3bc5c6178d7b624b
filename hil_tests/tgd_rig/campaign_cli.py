"""The `tgd-rig campaign` command line (docs/hil.md "Campaign").

Exit status: 0 no violation, 1 a violation (its replay file written), 2 bad input
(a one-line message naming the flag; nothing is created).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .campaign_plan import PlanError, load_replay

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "var" / "campaign"
MAX_HANDSETS = 4


class UsageError(Exception):
    pass


def add_campaign_parser(sub) -> None:
    p = sub.add_parser("campaign", help="random life sequences on emulated handsets, "
                                        "invariants checked after every step")
    p.add_argument("--seed", type=int, default=None, help="the plan's seed (default 1)")
    p.add_argument("--seeds", help="several seeds one after the other: 1-20 or 3,5,8")
    p.add_argument("--steps", type=int, help="steps per seed (default 50; with --duration: "
                                             "until the time is up)")
    p.add_argument("--duration", type=float, help="stop each seed after this many seconds")
    p.add_argument("--replay", type=Path, help="run the steps of a replay file instead")
    p.add_argument("--handsets", type=int, default=1, help=f"handsets (1..{MAX_HANDSETS})")
    p.add_argument("--timing", choices=("fast", "realistic"), default="fast")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="traces, results and replay files go under this folder")
    p.add_argument("--firmware", type=Path, help="main.py of another firmware build")
    p.add_argument("--summary", type=Path, help="write the merged figures of every seed here")
    p.add_argument("--keep-going", action="store_true",
                   help="check the remaining steps after a violation instead of stopping")
    p.add_argument("--quiet", action="store_true", help="do not print each step")
    p.add_argument("--merge", type=Path, nargs="+", metavar="SUMMARY",
                   help="print the figures of --summary files (or seeds' result.json) together; runs nothing")


def parse_seeds(args: argparse.Namespace) -> list[int]:
    if args.seeds and args.seed is not None:
        raise UsageError("--seed and --seeds: give one of them")
    if not args.seeds:
        return [1 if args.seed is None else args.seed]
    seeds: list[int] = []
    try:
        for part in args.seeds.split(","):
            if "-" in part.strip()[1:]:
                lo, hi = part.split("-", 1)
                seeds.extend(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise UsageError(f"--seeds {args.seeds!r}: use a range like 1-20 or a list like 3,5,8") from None
    if not seeds:
        raise UsageError(f"--seeds {args.seeds!r} names no seed (e.g. --seeds 1-20)")
    return seeds


def validate(args: argparse.Namespace) -> None:
    if args.steps is not None and args.steps < 1:
        raise UsageError("--steps must be at least 1 (e.g. --steps 200)")
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be a positive number of seconds (e.g. --duration 600)")
    if not 1 <= args.handsets <= MAX_HANDSETS:
        raise UsageError(f"--handsets must be 1..{MAX_HANDSETS}")
    if args.replay is not None and (args.seeds or args.seed is not None or args.steps):
        raise UsageError("--replay runs the file's own seed and steps: drop --seed/--seeds/--steps")
    if args.firmware is not None and not args.firmware.is_file():
        raise UsageError(f"--firmware {args.firmware}: no such file (give a firmware's main.py)")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; give a folder")


def cmd_campaign(args: argparse.Namespace) -> int:
    from .campaign import format_result, format_total, merge_results, plan_for, run_campaign

    if args.merge:
        try:
            results = []
            for path in args.merge:   # a --summary file, or one seed's result.json
                doc = json.loads(path.read_text(encoding="utf-8"))
                results.extend(doc["seeds"] if "seeds" in doc else [doc])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"tgd-rig campaign: --merge: not a summary file ({exc})", file=sys.stderr)
            return 2
        print(format_total(merge_results(results)))
        return 0
    try:
        validate(args)
        if args.replay is not None:
            replay = load_replay(args.replay)
            runs = [(replay["seed"], replay["steps"], replay["handsets"], replay["timing"])]
            label = "replay-"
        else:
            runs = [(seed, plan_for(seed, args.steps, args.handsets, args.duration), args.handsets,
                     args.timing) for seed in parse_seeds(args)]
            label = ""
    except (UsageError, PlanError) as exc:
        print(f"tgd-rig campaign: {exc}", file=sys.stderr)
        return 2
    import logging

    logging.getLogger("tgd").setLevel(logging.WARNING)   # the SMS gateway's lines: in the traces
    out = (lambda *a, **k: None) if args.quiet else print
    results = []
    failed = False
    for seed, steps, handsets, timing in runs:
        outdir = args.out / f"{label}seed-{seed}"
        print(f"campaign seed {seed}: {len(steps) if args.duration is None else 'up to'} "
              f"{'' if args.duration is None else f'{args.duration:g} s of '}steps, "
              f"{handsets} handset(s), {timing} timing; traces in {outdir}", flush=True)
        result = run_campaign(seed, steps, outdir, handsets=handsets, timing=timing,
                              duration_s=args.duration, firmware_main=args.firmware,
                              stop_on_violation=not args.keep_going, out=out)
        print(format_result(result), flush=True)
        results.append(result.to_json())
        failed = failed or not result.passed
    total = merge_results(results)
    if len(results) > 1 or args.summary:
        print(format_total(total))
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps({"total": total, "seeds": results}, indent=1) + "\n",
                                encoding="utf-8")
    return 1 if failed else 0
