#!/usr/bin/env bash
# Train and inference throughput of every classification model on a GPU, ours (JAX, bfloat16
# compute, float32 params) against PyTorch (CUDA, autocast bf16, channels_last) in interleaved
# rounds; one JSON per model in OUT_DIR (default benchmarks/gpu/). About 8 minutes on one
# H100/H200-class chip with the default batches.
#
#   benchmarks/gpu.sh [OUT_DIR]
#
# Environment: MODELS (space-separated subset of the names below), BATCH (one batch for all,
# else each model's own), STEPS / ROUNDS (timed steps per round, rounds), DTYPE (bfloat16),
# PRESET (e.g. ":test" for a CPU dry run of the script), VIP_CHECKOUT (a VisionPermutator
# checkout: ViP's reference), JAX_EXTRA (the jax pip extra, default cuda12), MATMUL_SIZE (side of
# the peak's square matmul, 8192: a GPU needs a large one to reach its peak).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/gpu}
mkdir -p "$OUT"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import jax, torch, timm, common" 2>/dev/null; then
  pip install -q -e '.[test]'
fi
if command -v nvidia-smi >/dev/null && ! python -c "import jax; assert jax.devices()[0].platform == 'gpu'" 2>/dev/null; then
  pip install -q "jax[${JAX_EXTRA:-cuda12}]"
fi

DTYPE=${DTYPE:-bfloat16}
STEPS=${STEPS:-10}
ROUNDS=${ROUNDS:-3}
PRESET=${PRESET:-}
# name | config | reference | batch that fills an 80-140 GB chip within the time budget
TABLE="
poolformer_s12|configs/metaformer/poolformer_s12.py|timm:poolformer_s12|256
volo_d1_224|configs/volo/volo_d1_224.py|timm:volo_d1_224|128
vip_s7|configs/permutator/vip_s7.py|${VIP_CHECKOUT:+permutator:vip_s7@$VIP_CHECKOUT}|128
dualformer_tiny|configs/dualformer/dualformer_tiny_k400.py||16
"
MODELS=${MODELS:-poolformer_s12 volo_d1_224 vip_s7 dualformer_tiny}
status=0
while IFS='|' read -r name config reference batch; do
  [ -n "$name" ] || continue
  case " $MODELS " in *" $name "*) ;; *) continue ;; esac
  echo "== $name"
  args=(--config="$config$PRESET" --batch "${BATCH:-$batch}" --steps "$STEPS" --rounds "$ROUNDS"
        --config.model.dtype="$DTYPE" --json_out "$OUT/$name.json" --matmul_size "${MATMUL_SIZE:-8192}")
  [ -n "$reference" ] && args+=(--reference "$reference")
  if ! timeout 900 python -m common.bench "${args[@]}" 2>"$OUT/$name.log" | grep -v '^{'; then
    echo "$name failed: see $OUT/$name.log"; status=1
  fi
done <<< "$TABLE"
exit $status
