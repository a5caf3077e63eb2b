#!/usr/bin/env bash
# GPU checks in one go, for a machine with CUDA (kept short: about 5-8 minutes on an H100/H200).
#   bash scripts/gpu_check.sh [OUT_DIR]        (default: gpu-results/)
# 1. correctness: the GPU tests (Triton kernels vs their torch twins, CUDA graphs == eager, compile path);
# 2. the issue's benchmark: eager fp32 / eager fp16 / torch.compile / fused kernels (+ CUDA graphs), 10 s at
#    batch 1 and 8 and a chunked 60 s utterance, with the profiler's per-op budget;
# 3. the Vocoder end to end: eager fp32 vs eager fp16 vs the fused-kernel path (what `waveflow vocode` runs);
# 4. the bundled starter voice (source-filter prior: its pitch synthesis is a short recursion) and a WaveFlow
#    on the GPU, eager fp32 / fp16 (random mels: the pitch predictor's shortest periods, its slowest case).
# Every result is JSON in OUT_DIR; README's "Fast fp16 inference kernels" table is filled from them.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-results}"
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/nvidia-smi.csv" || true
python -m pytest -q -p no:cacheprovider -m gpu tests/test_kernels.py 2>&1 | tee "$out/pytest-gpu.txt"
python scripts/bench_kernels.py --device cuda --dtype float16 --config default --seconds 10 --batch 1 8 \
    --long-seconds 60 --chunk 16384 --profile --json "$out/bench_kernels.json" 2>&1 | tee "$out/bench_kernels.txt"
python scripts/bench_infer.py --device cuda --dtype float16 --config default --seconds 10 \
    --modes eager-float32,eager-float16,kernels-float16,kernels-bfloat16 --json "$out/bench_infer.json" \
    2>&1 | tee "$out/bench_infer.txt"
python scripts/bench_infer.py --device cuda --dtype float16 --checkpoint waveflow/voices/starter.pt --seconds 10 \
    --modes eager-float32,eager-float16,kernels-float16 \
    --json "$out/bench_infer_starter.json" 2>&1 | tee "$out/bench_infer_starter.txt"
python scripts/bench_infer.py --device cuda --dtype float16 --config waveflow-64 --seconds 10 \
    --modes eager-float32,eager-float16 --json "$out/bench_infer_waveflow64.json" 2>&1 | tee "$out/bench_infer_waveflow64.txt"
echo "results in $out/"
