"""``make bench``: every benchmark in turn with its defaults, each printing ratios against its own baseline.

Each runs as its own process so that one's memory and threads do not colour the next one's figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = ("bench_cka.py", "bench_eval.py", "bench_finetune.py", "bench_load.py")


def main() -> int:
    here = Path(__file__).parent
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== {name}", flush=True)
        if subprocess.run([sys.executable, str(here / name)]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
