#!/usr/bin/env bash
# The GPU checks in one command, for a machine with a CUDA GPU and a python3 whose torch sees it:
# the device-stream tests (CUDA values equal CPU values bit for bit, and fills use the fused
# kernel; they skip on machines without a GPU) and diagnose on CUDA against the CPU report, then
# `bench fill --device cuda`, `bench materialize xl --device cuda` and a profile of that
# materialization (benchmarks/materialize_profile.py: host functions against device time). If
# the fused kernel failed its bit-for-bit check, benchmarks/gpu_kernel_parts.py compiles each
# stage alone to say which one loses bits. Each step has a time limit (STEP_SCALE multiplies them) and a failed step does not
# stop the next; the exit status is the number of failed steps. Logs go to $1 (or $OUT, or
# ./gpu-check).
#   bash benchmarks/gpu_check.sh            # or: make gpu-check
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
LOGS=${1:-${OUT:-gpu-check}}
SCALE=${STEP_SCALE:-1}
mkdir -p "$LOGS"
failed=0

step() {  # step NAME SECONDS CMD...: run CMD with a time limit, log to $LOGS/NAME.log
  local name=$1 limit=$(($2 * SCALE)) t0=$SECONDS rc
  shift 2
  echo "=== $name (limit ${limit}s)"
  timeout -k 5 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
  rc=${PIPESTATUS[0]}
  echo "=== $name: rc $rc in $((SECONDS - t0)) s" | tee -a "$LOGS/steps.log"
  [ "$rc" = 0 ] || failed=$((failed + 1))
  return 0
}

step device 60 "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'; \
print('torch', torch.__version__, 'on', torch.cuda.get_device_name(), \
torch.cuda.get_device_properties(0).multi_processor_count, 'SMs'); \
import triton, numpy, scipy; print('triton', triton.__version__, 'numpy', numpy.__version__)"
step tests 150 "$PY" -m pytest -q -p no:cacheprovider -rs -W "default::RuntimeWarning" \
  -k "not interpreter" tests/test_device_streams.py \
  "tests/test_diagnostics.py::test_cuda_report_equals_cpu"
step fill 100 "$PY" -m initwise.cli bench fill --device cuda
if grep -q "check failed\|does not match\|compiling the device kernel failed" \
  "$LOGS/tests.log" "$LOGS/fill.log"; then
  step parts 90 "$PY" benchmarks/gpu_kernel_parts.py cuda
fi
step materialize 120 "$PY" -m initwise.cli bench materialize xl --device cuda
step profile 90 "$PY" benchmarks/materialize_profile.py cuda xl
echo "failed steps: $failed"
exit "$failed"
