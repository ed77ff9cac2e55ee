"""``python -m benchmarks [NAME ...] [--quick]``: run the benchmarks named (all of BENCHES)."""

from __future__ import annotations

import argparse
import sys

from benchmarks import (
    cases_bench,
    engines_bench,
    hostile_bench,
    ingest_bench,
    live_bench,
    notify_bench,
    query_bench,
    recovery_bench,
    replay_bench,
    restart_bench,
)

BENCHES = {
    "ingest": ingest_bench.main,
    "replay": replay_bench.main,
    "engines": engines_bench.main,
    "live": live_bench.main,
    "restart": restart_bench.main,
    "recovery": recovery_bench.main,
    "cases": cases_bench.main,
    "query": query_bench.main,
    "notify": notify_bench.main,
    "hostile": hostile_bench.main,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", choices=[*BENCHES, []], default=list(BENCHES))
    parser.add_argument("--quick", action="store_true", help="smaller runs (smoke-testing)")
    args = parser.parse_args()
    for name in args.names or list(BENCHES):
        print(f"== {name} ==", flush=True)
        code = BENCHES[name](quick=args.quick)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
