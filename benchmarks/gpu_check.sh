#!/usr/bin/env bash
# The GPU checks of issue 16 in one command, for a machine with a CUDA GPU and a python3 whose
# torch sees it: the device-stream tests (CUDA values equal CPU values bit for bit; they skip on
# machines without a GPU) and diagnose on CUDA against the CPU report, then `bench fill --device cuda` and `bench materialize xl --device
# cuda`. Logs go to $1 (or $OUT, or ./gpu-check).
#   bash benchmarks/gpu_check.sh            # or: make gpu-check
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
LOGS=${1:-${OUT:-gpu-check}}
mkdir -p "$LOGS"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible to torch'; \
print('torch', torch.__version__, 'on', torch.cuda.get_device_name())" | tee "$LOGS/device.log"
"$PY" -m pytest -q -p no:cacheprovider tests/test_device_streams.py \
  "tests/test_diagnostics.py::test_cuda_report_equals_cpu" 2>&1 | tee "$LOGS/tests.log"
"$PY" -m initwise.cli bench fill --device cuda 2>&1 | tee "$LOGS/fill.log"
"$PY" -m initwise.cli bench materialize xl --device cuda 2>&1 | tee "$LOGS/materialize.log"
