#!/usr/bin/env bash
# The device check of `crosscheck run --device`, for a machine with an NVIDIA GPU, a CUDA
# build of torch and jax[cuda12] (this repository's CI has no GPU: run it by hand there).
#
#   benchmarks/device_check.sh [OUTDIR]          # default OUTDIR: device-check
#
# Runs the smoke sweep on torch (device cuda) and JAX (platform gpu) against the float64
# reference (refcnn, on the CPU), writes OUTDIR/gpu.{json,md,xml}, prints the device and the
# precision settings recorded in the report (TF32 in cuDNN and cuBLAS, float32 matmul
# precision, JAX's conv and default matmul precision, XLA_FLAGS), and then, unless
# DEVICE_CHECK_CPU=0, runs the same sweep on the CPU and prints `crosscheck diff cpu gpu`:
# what the GPU changes (newly failing cases, errors grown beyond x2).
#
# DEVICE_CHECK_DEVICE=cuda:1 picks another GPU (cpu dry-runs the script itself).
#
# Exit status: that of the GPU run (0 all agree, 1 a discrepancy, 2 no GPU: the message says
# what is missing, as `crosscheck run --device cuda` does on a machine without one).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CROSSCHECK_JAX_CACHE="${CROSSCHECK_JAX_CACHE:-none}"
out="${1:-device-check}"
mkdir -p "$out"
python="${PYTHON:-python3}"
device="${DEVICE_CHECK_DEVICE:-cuda}"
common=(--cases smoke --backends torch,jax --no-progress --max-failures 5)

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
    --format=csv,noheader
"$python" -m crosscheck --version

"$python" -m crosscheck run "${common[@]}" --device "$device" --json "$out/gpu.json" \
    --markdown "$out/gpu.md" --junit "$out/gpu.xml" > "$out/gpu.txt"
rc=$?
tail -n 25 "$out/gpu.txt"
if [ -f "$out/gpu.json" ]; then
    "$python" - "$out/gpu.json" <<'PY'
import json
import sys

report = json.load(open(sys.argv[1]))
print(f"\nrecorded: device {report.get('device')}; {report.get('verdict')}")
for backend, settings in report["versions"].get("settings", {}).items():
    print(f"  {backend}: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
PY
fi
if [ "$rc" -le 1 ] && [ "${DEVICE_CHECK_CPU:-1}" != 0 ]; then
    "$python" -m crosscheck run "${common[@]}" --device cpu --json "$out/cpu.json" \
        > "$out/cpu.txt"
    echo "cpu run: exit $?"
    "$python" -m crosscheck diff "$out/cpu.json" "$out/gpu.json" --markdown "$out/diff.md"
    echo "diff cpu -> gpu: exit $? (1: something is worse on the GPU)"
fi
echo "device check: exit $rc (reports in $out/)"
exit "$rc"
