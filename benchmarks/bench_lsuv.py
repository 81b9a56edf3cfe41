"""initwise LSUV vs the lsuv package: `python benchmarks/bench_lsuv.py` (`initwise bench lsuv`)."""

from initwise.bench.lsuv import run

if __name__ == "__main__":
    run()
