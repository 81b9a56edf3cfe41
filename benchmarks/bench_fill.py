"""Fill throughput vs torch.nn.init: `python benchmarks/bench_fill.py` (`initwise bench fill`)."""

from initwise.bench.fill import run

if __name__ == "__main__":
    run()
