"""B13 — does `fast_top_p` (backends/nucleus.py through the vLLM logits processor) draw from the same distribution as
vLLM's own sampler? Three checks in the engine, on one brainstorming prompt of the packaged SmolLM2-135M-Instruct
(chat format), each request with its own seed:

1. first tokens of 3,000 requests per sampler against the model's own probabilities (χ² on the 8 most likely);
2. the two samplers' first 3 tokens against each other (two-sample χ² over sequences and over third tokens seen
   at least 10 times);
3. 400 whole brainstorming completions per sampler (stop strings, 128-token cap): the length distributions
   (Kolmogorov-Smirnov) and how the items parse.

    .venv/bin/python benchmarks/b13_checks.py [--model models/smollm2-135m-instruct --format chat]

Results: benchmarks/results/b13_checks.json.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import random
from collections import Counter

from benchlib import ENGINE_PACKAGES, ROOT, header, write_result
from vllm import SamplingParams

from selfspec_plugin.backends.base import Sampling, render
from selfspec_plugin.backends.vllm import VLLMBackend, sampling_params
from selfspec_plugin.prompts import Prompt, brainstorm_prompt, parse_brainstorm

SAMPLERS = {"vllm": False, "fast_top_p": True}


def two_sample_chi2(a: Counter, b: Counter, least: int = 10) -> dict:
    cells = [t for t, _ in (a + b).most_common() if a[t] + b[t] >= least]
    return {"categories": len(cells), "chi2": round(sum((a[t] - b[t]) ** 2 / (a[t] + b[t]) for t in cells), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--format", default="chat")
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "b13_checks.json"))
    args = ap.parse_args()
    backend = VLLMBackend(args.model, {"dtype": "bfloat16", "max_model_len": 4096, "gpu_memory_utilization": 0.3})
    seeds = [json.loads(line) for line in (ROOT / "seeds" / "biomed.jsonl").read_text().splitlines()]
    base = brainstorm_prompt("x", random.Random(0).sample(seeds, 3), "biomedicine", items=1)
    text = render(base, args.format, backend.tokenizer)

    def copies(n: int, stop: bool = False) -> list[Prompt]:
        stops = base.stop if stop else ()
        return [Prompt(f"q{i}", base.text, base.messages, prefix=base.prefix, stop=stops) for i in range(n)]

    def tokens(n: int, steps: int, fast: bool, seed: int) -> list[tuple[int, ...]]:
        params = [sampling_params(Sampling(1.0, 0.98, steps, seed, fast_top_p=fast), p) for p in copies(n)]
        for p in params:
            p.ignore_eos = True
        return [tuple(o.outputs[0].token_ids) for o in backend.llm.generate([text] * n, params, use_tqdm=False)]

    result = header(
        "B13 checks: fast_top_p draws from vLLM's distribution", "no detectable difference", ENGINE_PACKAGES
    )
    # 1. first tokens against the model's probabilities (vLLM returns at most 20 logprobs)
    top = backend.llm.generate([text], SamplingParams(temperature=0, max_tokens=1, logprobs=20), use_tqdm=False)
    probs = {t: math.exp(lp.logprob) for t, lp in top[0].outputs[0].logprobs[0].items()}
    likely = sorted(probs, key=probs.get, reverse=True)[:8]
    first = {}
    for name, fast in SAMPLERS.items():
        seen = Counter(t[0] for t in tokens(3000, 1, fast, 11))
        chi2 = sum((seen[t] - 3000 * probs[t]) ** 2 / (3000 * probs[t]) for t in likely)
        first[name] = {"observed": [seen[t] for t in likely], "chi2_8": round(chi2, 1)}
    first["expected"] = [round(3000 * probs[t]) for t in likely]
    # 2. the first 3 tokens, sampler against sampler
    runs = {name: tokens(3000, 3, fast, 13) for name, fast in SAMPLERS.items()}
    three = {
        "sequences": two_sample_chi2(*(Counter(runs[n]) for n in SAMPLERS)),
        "third_token": two_sample_chi2(*(Counter(s[2] for s in runs[n]) for n in SAMPLERS)),
    }
    # 3. whole brainstorming completions
    whole, lengths = {}, {}
    for name, fast in SAMPLERS.items():
        prompts = copies(400, stop=True)
        out = backend.generate(prompts, Sampling(1.0, 0.98, 128, 3, fast_top_p=fast), args.format)
        lengths[name] = sorted(c.tokens for c in out)
        parsed = Counter(
            item.get("rejected", "parsed")
            for p, c in zip(prompts, out)
            for item in parse_brainstorm(p.prefix, c.text, c.finish_reason == "length")
        )
        whole[name] = {
            "mean_tokens": round(sum(lengths[name]) / 400, 1),
            "capped": sum(c.finish_reason == "length" for c in out),
            "items": dict(parsed),
        }
    a, b = lengths["vllm"], lengths["fast_top_p"]
    ks = max(abs(bisect.bisect_right(a, x) - bisect.bisect_right(b, x)) / 400 for x in set(a + b))
    whole["ks_d"], whole["ks_critical_0.05"] = round(ks, 3), round(1.36 * math.sqrt(2 / 400), 3)
    result.update(model=args.model, first_token=first, first_three=three, completions=whole)
    write_result(args.result, result)
    print(json.dumps({k: result[k] for k in ("first_token", "first_three", "completions")}, indent=1))
    backend.close()


if __name__ == "__main__":
    main()
