#!/usr/bin/env bash
# Every CPU table of BENCHMARKS.md in one fresh run, one after another on an otherwise idle machine.
#
#   bash bench/run_all.sh            # about 50 minutes on a 2-core CPU; log in bench/results/all-*.log
#
# The sizes are cut down to fit a small CPU (the issue's 512 px defaults take hours there);
# each script's --help shows the full-size form. Random VGG19 weights throughout.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}
export NST_BATCH_OFFLINE=1
mkdir -p results
LOG="results/all-$(date +%Y%m%d-%H%M%S).log"
run() {
    echo "\$ python bench/$*" | tee -a "$LOG"
    "$PY" "$@" 2>&1 | grep -v "^USDT\|^ERROR:.*gpuGetDeviceCount" | tee -a "$LOG"
    echo | tee -a "$LOG"
}
"$PY" -c "import torch, platform, os; print('torch', torch.__version__, platform.machine(), os.cpu_count(), 'cores')" | tee -a "$LOG"
run iteration.py --sizes 256 512 --iterations 3 --rounds 2
run flops.py --sizes 128 256 512
run op_profile.py --size 256 --iterations 6
run baseline.py --size 96 --images 8 --iterations 20
run scales.py --size 192 --iterations 60
OMP_NUM_THREADS=1 run video.py --frames 12 --size 96 --first 30 --warm 6 --weights random --device cpu
run memory.py --sizes 512 1024 1920 --iterations 1
run batch.py --images 8 --size 128 --iterations 10 --batches 1 2 4 8 --rounds 2
run ray.py
echo "log: bench/$LOG"
