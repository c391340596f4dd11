#!/usr/bin/env bash
# Every CPU benchmark of docs/benchmarks.md, one after the other (never two at once: they share 2 cores),
# each writing benchmarks/results/<name>.json, then the tables of docs/benchmarks.md. About an hour on 2 cores.
#   bash benchmarks/run_all.sh                         (after `make install`)
#   bash benchmarks/run_all.sh b1_overhead b2_engines  (some of them)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 AXOLOTL_DO_NOT_TRACK=1 WANDB_MODE=disabled
selfspec fetch-demo-model >/dev/null
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(b4_retrieval b3_novelty b1_overhead b2_engines b5_train_overhead b9_corpus_recall)
for bench in "${benches[@]}"; do
  echo "== $bench"
  python "benchmarks/$bench.py" 2> "benchmarks/results/$bench.log"
done
python benchmarks/summary.py
