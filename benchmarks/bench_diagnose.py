"""diagnose time / one forward+backward: `python benchmarks/bench_diagnose.py`."""

from initwise.bench.diagnose import run

if __name__ == "__main__":
    run()
