"""``python -m faults [--quick] [--out DIR]`` and ``python -m faults soak --minutes M``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # aiokafka's clients of the verifier warn on every refused connection while a broker is
    # down on purpose; the nemesis' own log says what happens
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if argv[:1] == ["soak"]:
        from faults.soak import main as soak_main

        parser = argparse.ArgumentParser(prog="python -m faults soak")
        parser.add_argument("--minutes", type=float, default=30.0)
        parser.add_argument(
            "--rate", type=float, help="pushes/s (default: half the measured maximum)"
        )
        parser.add_argument("--out", type=Path)
        parser.add_argument(
            "--max-rss-slope",
            type=float,
            default=2.0,
            help="MiB per minute allowed over the second half (each process)",
        )
        args = parser.parse_args(argv[1:])
        return soak_main(args.minutes, args.rate, args.out, args.max_rss_slope)
    from faults.harness import main as harness_main

    parser = argparse.ArgumentParser(prog="python -m faults")
    parser.add_argument("--quick", action="store_true", help="the short run (make faults-quick)")
    parser.add_argument("--out", type=Path, help="report dir (default .run/faults/<timestamp>)")
    parser.add_argument("--rate", type=float, help="pushes/s (default 12 quick, 20 long)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    return harness_main(args.quick, args.out, args.rate, args.seed)


if __name__ == "__main__":
    sys.exit(main())
