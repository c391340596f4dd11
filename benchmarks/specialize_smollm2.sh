#!/usr/bin/env bash
# The whole self-specialization loop on CPU with the packaged SmolLM2-135M-Instruct, timed stage by stage:
# generate >= 300 triplets from the biomedical seeds, write the data report, QLoRA-train through Axolotl,
# then score base vs adapter on the held-out tasks (k = 0 and 1) and on PubMedQA / NCBI-disease.
# Results: outputs/specialize-smollm2/{selfspec/<run>/report, eval}; docs/results.md quotes them.
#   bash benchmarks/specialize_smollm2.sh            (about 2.5 h on 2 CPU cores; reruns reuse finished stages)
set -euo pipefail
cd "$(dirname "$0")/.."
make install >/dev/null
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 AXOLOTL_DO_NOT_TRACK=1 WANDB_MODE=disabled
RECIPE=benchmarks/specialize_smollm2.yml
OUT=outputs/specialize-smollm2
BENCH=${BENCH:-../shared/benchmarks}
LIMIT=${LIMIT:-100}
mkdir -p "$OUT"
stage() {  # stage NAME COMMAND...: run it, append "NAME seconds" to $OUT/times.txt
  local name=$1; shift
  local start=$SECONDS
  "$@"
  echo "$name $((SECONDS - start))" | tee -a "$OUT/times.txt"
}
stage fetch-model selfspec fetch-demo-model
stage generate selfspec generate "$RECIPE" --no-progress > "$OUT/data-path.txt"
RUN=$(dirname "$(cat "$OUT/data-path.txt")")
stage report selfspec inspect "$RUN" --report --samples 5
stage train axolotl train "$RECIPE"
stage eval selfspec eval "$RECIPE" --adapter "$OUT" --shots 0,1 --samplings 2 --limit "$LIMIT" --out "$OUT/eval" \
  --tasks seeds/eval/biomed.jsonl "pubmedqa:$BENCH/pubmedqa" "ncbi-disease:$BENCH/ncbi-disease"
echo "run: $RUN"
cat "$OUT/times.txt"
