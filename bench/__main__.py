"""`make bench`: every benchmark, each as ratios against a baseline measured in the same run."""

from __future__ import annotations

import importlib
import sys

BENCHES = ("bench_sessions", "bench_snippet", "bench_import", "bench_delivery")


def main() -> int:
    quick = "--quick" in sys.argv
    only = [a for a in sys.argv[1:] if not a.startswith("-")]
    for name in BENCHES:
        if only and name not in only:
            continue
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        print(f"== {name}", flush=True)
        module.run(quick=quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
