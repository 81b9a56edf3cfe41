"""Meta-device materialization of GPT-2 shapes: `python benchmarks/bench_materialize.py [size]`."""

import sys

from initwise.bench.materialize import run

if __name__ == "__main__":
    run(sys.argv[1] if len(sys.argv) > 1 else "medium")
