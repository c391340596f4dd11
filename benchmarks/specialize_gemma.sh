#!/usr/bin/env bash
# Issue 30's experiment, the paper's setting on CPU: self-specialize the BASE model Gemma-3-270M
# (recipes/gemma-biomed.yml) and compare it, on the same items, with the base at k = 0 and k = 5 and with the
# seeds-only control trained for the SAME number of optimizer steps (selfspec.match_steps_of: epochs over the
# 80 seeds), two training seeds per adapter:
#   1. fetch the model; 2. generate 2,000 triplets (BM25-grounded responses, the data-quality gates) + the data
#   report; 3. per training seed: axolotl train selfspec, then the seeds-only control matched to it;
#   4. selfspec eval (the base at k = 5 before any training; after each seed's pair, the base and every adapter so
#   far at k = 0 with the base's k = 5 beside them, `--base-shots 5`: every adapter paired with the base at k = 0
#   and at k = 5; adapters merged into the weights on CPU) on the 10 held-out tasks, PubMedQA test (500) and
#   NCBI-disease test (100); 5. every adapter at k = 5 as well (the paper's comparison: the same k as the base).
#   bash benchmarks/specialize_gemma.sh              (days on 2 CPU cores: every stage resumes or is reused, so
#   SEEDS=1 bash benchmarks/specialize_gemma.sh       it runs in legs; rerun it after an interruption. SEEDS picks
#                                                     the training seeds: "1 2" by default)
# Stage times go to outputs/gemma-biomed/times.txt; the evidence is copied into docs/results/gemma/ at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
make install >/dev/null
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 AXOLOTL_DO_NOT_TRACK=1 WANDB_MODE=disabled
RECIPE=recipes/gemma-biomed.yml
OUT=outputs/gemma-biomed        # the recipe's output_dir: its runs folder (selfspec/) is shared by every arm
SEEDS=${SEEDS:-"1 2"}
mkdir -p "$OUT"
stage() {  # stage NAME COMMAND...: run it, append "NAME seconds" to $OUT/times.txt
  local name=$1; shift
  local start=$SECONDS
  "$@"
  echo "$name $((SECONDS - start))" | tee -a "$OUT/times.txt" >&2  # (stderr: a stage's stdout may be redirected)
}
# One recipe per arm, in its own folder: the training seed, output_dir, the shared runs folder (so every arm
# trains on the one generated run), and for the control seeds_only + match_steps_of its selfspec twin.
arm() {  # arm NAME SEED [MATCHED_DIR]: writes $OUT/NAME/recipe.yml
  mkdir -p "$OUT/$1"
  python - "$RECIPE" "$OUT" "$@" <<'EOF'
import sys, yaml
from selfspec_plugin.recipe import load
recipe, out, name, seed, *matched = sys.argv[1:]
cfg = load(recipe)  # the selfspec block's paths resolved: the recipe can live anywhere
cfg.update(seed=int(seed), output_dir=f"{out}/{name}", dataset_prepared_path=f"{out}/{name}/prepared")
cfg["selfspec"]["runs_dir"] = f"{out}/selfspec"
if matched:
    cfg["selfspec"].update(seeds_only=True, match_steps_of=matched[0])
yaml.safe_dump(cfg, open(f"{out}/{name}/recipe.yml", "w"), sort_keys=False)
EOF
}
train() {  # train NAME: axolotl train its recipe, the log kept beside the adapter; skipped once trained
  local dir="$OUT/$1"
  [ -f "$dir/adapter_model.safetensors" ] || stage "train-$1" bash -o pipefail -c "axolotl train $dir/recipe.yml 2>&1 | tee -a $dir/train.log"
}
[ -f models/gemma-3-270m/config.json ] || stage fetch-model selfspec fetch-demo-model gemma-3-270m
# Once an adapter is trained its data is settled: later legs use the run it names, and do not look the run up
# again (a change of the run key's code would otherwise start a new generation).
if [ ! -s "$OUT/data-path.txt" ]; then
  stage generate selfspec generate "$RECIPE" --no-progress > "$OUT/data-path.txt.new"
  tail -n 1 "$OUT/data-path.txt.new" > "$OUT/data-path.txt" && rm "$OUT/data-path.txt.new"  # (the path: last line)
fi
RUN=$(dirname "$(cat "$OUT/data-path.txt")")
[ -s "$OUT/inspect.txt" ] || stage report selfspec inspect "$RUN" --report --samples 5 > "$OUT/inspect.txt"
# The baselines first (they need no training): the base at k = 5 (its recipe's output_dir holds no adapter), one
# demo sampling per item. Each eval resumes from its cache, so a rerun only scores what is new.
arm base 1
[ -s "$OUT/eval-base-k5/eval.json" ] ||
  stage eval-base-k5 selfspec eval "$OUT/base/recipe.yml" --no-progress --shots 5 --samplings 1 --out "$OUT/eval-base-k5"
# Per training seed: selfspec, its equal-steps control, then k = 0 for the base and every adapter trained so far on
# one set of items, the base's k = 5 read back from eval-base-k5's cache (paired intervals between all of them, and
# each adapter against the base at k = 5): the first seed's verdict comes before the second's training starts.
ADAPTERS=()
for seed in $SEEDS; do
  arm "selfspec-s$seed" "$seed"
  train "selfspec-s$seed"
  arm "seeds-only-s$seed" "$seed" "$OUT/selfspec-s$seed"
  train "seeds-only-s$seed"
  ADAPTERS+=(--adapter "selfspec-s$seed=$OUT/selfspec-s$seed" --adapter "seeds-only-s$seed=$OUT/seeds-only-s$seed")
  mkdir -p "$OUT/eval/cache" && cp -n "$OUT/eval-base-k5/cache/"* "$OUT/eval/cache/"
  stage "eval-k0-s$seed" selfspec eval "$OUT/base/recipe.yml" --no-progress --shots 0 --base-shots 5 --samplings 1 \
    "${ADAPTERS[@]}" --out "$OUT/eval"
done
# The paper's own comparison: every adapter with the same five demonstrations as the base (its predictions again
# read back from eval-base-k5's cache).
mkdir -p "$OUT/eval-k5/cache" && cp -n "$OUT/eval-base-k5/cache/"* "$OUT/eval-k5/cache/"
stage eval-k5 selfspec eval "$OUT/base/recipe.yml" --no-progress --shots 5 --samplings 1 "${ADAPTERS[@]}" \
  --out "$OUT/eval-k5"
# The evidence beside docs/results.md: adapters (a few MB each, with the marker that names their data, format and
# optimizer steps), predictions, the generated data, trainer logs, stage times.
EVIDENCE=docs/results/gemma
for seed in $SEEDS; do
  for name in "selfspec-s$seed" "seeds-only-s$seed"; do
    mkdir -p "$EVIDENCE/adapters/$name"
    cp "$OUT/$name/adapter_config.json" "$OUT/$name/adapter_model.safetensors" "$OUT/$name/selfspec-trained.json" \
      "$OUT/$name/train.log" "$EVIDENCE/adapters/$name/"
  done
done
for eval in eval eval-k5 eval-base-k5; do
  mkdir -p "$EVIDENCE/$eval"
  cp "$OUT/$eval/predictions.jsonl" "$OUT/$eval/eval.json" "$OUT/$eval/eval.md" "$OUT/$eval/eval.png" "$EVIDENCE/$eval/"
done
cp "$RUN/data.jsonl" "$RUN/manifest.json" "$OUT/times.txt" "$OUT/inspect.txt" "$EVIDENCE/"
cp -r "$RUN/report/." "$EVIDENCE/"
echo "run: $RUN"
cat "$OUT/times.txt"
