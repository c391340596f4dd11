#!/usr/bin/env bash
# The controlled experiment of docs/results.md, on CPU with the packaged SmolLM2-135M-Instruct, timed stage by
# stage: generate >= 1,000 triplets from the biomedical seeds (BM25-grounded responses), write the data report,
# QLoRA-train two adapters from one recipe (on the generated data; on the 80 seeds alone), then score base,
# selfspec and seeds-only on one engine: the held-out tasks and PubMedQA / NCBI-disease at full size.
#   bash benchmarks/specialize_smollm2.sh     (several hours on 2 CPU cores; every stage resumes or is reused,
#                                              so it can run in legs: rerun it after an interruption)
# The evidence it leaves for docs/results.md is copied into docs/results/ at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
make install >/dev/null
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 AXOLOTL_DO_NOT_TRACK=1 WANDB_MODE=disabled
RECIPE=benchmarks/specialize_smollm2.yml
OUT=outputs/specialize-smollm2
CONTROL=outputs/specialize-smollm2-seeds-only
mkdir -p "$OUT" "$CONTROL"
stage() {  # stage NAME COMMAND...: run it, append "NAME seconds" to $OUT/times.txt
  local name=$1; shift
  local start=$SECONDS
  "$@"
  echo "$name $((SECONDS - start))" | tee -a "$OUT/times.txt" >&2  # (stderr: a stage's stdout may be redirected)
}
# The control: the same recipe, seeds only, its own output_dir (written elsewhere, so its selfspec paths resolved).
python - "$RECIPE" "$CONTROL/recipe.yml" "$CONTROL" <<'EOF'
import sys, yaml
from selfspec_plugin.recipe import load
cfg = load(sys.argv[1])
cfg["selfspec"]["seeds_only"] = True
cfg.update(output_dir=sys.argv[3], dataset_prepared_path=f"{sys.argv[3]}/prepared")
yaml.safe_dump(cfg, open(sys.argv[2], "w"), sort_keys=False)
EOF
train() {  # train RECIPE OUTPUT_DIR: axolotl train, its log kept beside the adapter; skipped once trained
  [ -f "$2/adapter_model.safetensors" ] || stage "train-$(basename "$2")" bash -o pipefail -c "axolotl train $1 2>&1 | tee $2/train.log"
}
stage fetch-model selfspec fetch-demo-model
train "$CONTROL/recipe.yml" "$CONTROL"
# Once the adapter is trained its data is settled: later legs (the eval) use the run it names, and do not
# look the run up again (a change of the run key's code would otherwise start a new generation).
if [ ! -f "$OUT/adapter_model.safetensors" ] || [ ! -s "$OUT/data-path.txt" ]; then
  stage generate selfspec generate "$RECIPE" --no-progress > "$OUT/data-path.txt.new"
  tail -n 1 "$OUT/data-path.txt.new" > "$OUT/data-path.txt" && rm "$OUT/data-path.txt.new"  # (the path: last line)
fi
RUN=$(dirname "$(cat "$OUT/data-path.txt")")
[ -s "$OUT/inspect.txt" ] || stage report selfspec inspect "$RUN" --report --samples 5 > "$OUT/inspect.txt"
train "$RECIPE" "$OUT"
stage eval selfspec eval "$RECIPE" --no-progress --adapter "selfspec=$OUT" --adapter "seeds-only=$CONTROL" --out "$OUT/eval"
# The evidence beside docs/results.md: adapters (a few MB each, with the marker that names their training
# format), predictions, the generated data, trainer logs.
EVIDENCE=docs/results
for pair in "selfspec:$OUT" "seeds-only:$CONTROL"; do
  name=${pair%%:*} dir=${pair#*:}
  mkdir -p "$EVIDENCE/adapters/$name"
  cp "$dir/adapter_config.json" "$dir/adapter_model.safetensors" "$dir/selfspec-trained.json" "$EVIDENCE/adapters/$name/"
  cp "$dir/train.log" "$EVIDENCE/adapters/$name/train.log"
done
cp "$OUT/eval/predictions.jsonl" "$OUT/eval/eval.json" "$OUT/eval/eval.md" "$OUT/eval/eval.png" "$EVIDENCE/"
cp "$RUN/data.jsonl" "$RUN/manifest.json" "$OUT/times.txt" "$EVIDENCE/"
cp -r "$RUN/report/." "$EVIDENCE/"
echo "run: $RUN"
cat "$OUT/times.txt"
