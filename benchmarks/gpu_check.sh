#!/usr/bin/env bash
# Run benchmarks/gpu_check.py on a lent GPU machine (torch/transformers/peft there; no network).
# Prepared here by `benchmarks/gpu_check.sh --prepare` (downloads wheels from PyPI, copies the tokenizer),
# then run there with the ignored paths .cache/gpu-carry and .cache/test-models carried along.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.cache/gpu-carry
if [[ "${1:-}" == "--prepare" ]]; then
  mkdir -p $CARRY/wheels $CARRY/tokenizer
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform any -d $CARRY/wheels \
    bitsandbytes==0.50.2 pluggy==1.7.0 pydantic==2.12.5 pydantic-core==2.41.5 annotated-types typing-inspection
  cp models/smollm2-135m-instruct/{tokenizer.json,tokenizer_config.json,config.json} $CARRY/tokenizer/
  .venv/bin/python -c "import sys; sys.path.insert(0, 'tests'); import tiny_model; print(tiny_model.tiny_model_dir())"
  exit 0
fi
OUT=${OUT:-outputs/gpu-check}
python -m pip install -q --no-deps --no-index --target .cache/site $CARRY/wheels/*.whl
export PYTHONPATH=$PWD/.cache/site:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv || true
python benchmarks/gpu_check.py --out "$OUT" --tiny "$(ls -d .cache/test-models/tiny-llama-* | head -1)" \
  --tokenizer $CARRY/tokenizer "${@}"
