#!/usr/bin/env bash
# Every CPU benchmark of docs/benchmarks.md, one after the other (never two at once: they share 2 cores),
# each writing benchmarks/results/<name>.json, then the tables of docs/benchmarks.md. About 2 hours on 2 cores
# (B1 and B2 on the tiny model, SmolLM2-135M and Gemma-3-270M: ~1 hour of it; run them alone with --models tiny).
#   bash benchmarks/run_all.sh                         (after `make install`)
#   bash benchmarks/run_all.sh b1_overhead b2_engines  (some of them)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 AXOLOTL_DO_NOT_TRACK=1 WANDB_MODE=disabled
selfspec fetch-demo-model >/dev/null
selfspec fetch-demo-model gemma-3-270m >/dev/null
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(b4_retrieval b3_novelty b1_overhead b2_engines b5_train_overhead b9_corpus_recall)
declare -A args=([b1_overhead]="--models tiny,smollm2,gemma" [b2_engines]="--models tiny,smollm2,gemma")
for bench in "${benches[@]}"; do
  echo "== $bench"
  # shellcheck disable=SC2086  # the arguments are words
  python "benchmarks/$bench.py" ${args[$bench]:-} 2> "benchmarks/results/$bench.log"
done
python benchmarks/summary.py
