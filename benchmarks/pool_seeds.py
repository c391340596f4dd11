"""An arm trained with several seeds, scored as one: each item's score is the mean over the seeds' adapters, as
`selfspec eval` averages an item over its demonstration samplings, and the paired intervals compare those means with
the other arms (docs/results.md, Gemma-3-270M: two training seeds per adapter).

    .venv/bin/python benchmarks/pool_seeds.py EVAL_DIR OUT_DIR --pool selfspec=selfspec-s1,selfspec-s2 \\
        --pool seeds-only=seeds-only-s1,seeds-only-s2 --pair selfspec=base --pair selfspec=base@5 \\
        --pair selfspec=seeds-only [--k 0]

Each seed's predictions become one more "sampling" of the pooled arm (an item's score: the mean over them); models
named in no pool stay as they are. `--pair MODEL=REFERENCE[@K]`: a paired difference at the table's k, the
reference at its own k after `@` (the base at k = 5). OUT_DIR gets an eval.json that benchmarks/results_table.py
renders; the tables are printed too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rescore_eval import load, score
from results_table import arm_name, tables

from selfspec_plugin.report import many_comparisons


def pooled(rows: list[dict], pools: dict[str, list[str]]) -> list[dict]:
    """The prediction rows with each pool's members relabelled as the pool, member j's sampling s as sampling
    j * S + s (S: the samplings each member has)."""
    member = {label: (name, j) for name, labels in pools.items() for j, label in enumerate(labels)}
    samplings = 1 + max(r["sampling"] for r in rows)
    out = []
    for r in rows:
        if r["model"] in member:
            name, j = member[r["model"]]
            r = {**r, "model": name, "sampling": j * samplings + r["sampling"]}
        out.append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="an eval's folder: eval.json and predictions.jsonl")
    ap.add_argument("out", type=Path, help="a folder for the pooled eval.json")
    ap.add_argument("--pool", action="append", required=True, metavar="NAME=LABEL,LABEL", help="repeat")
    ap.add_argument("--pair", action="append", required=True, metavar="MODEL=REFERENCE[@K]", help="repeat")
    ap.add_argument("--k", type=int, default=0, help="the models' k (the table's)")
    args = ap.parse_args()
    pools = {name: labels.split(",") for name, labels in (p.split("=", 1) for p in args.pool)}
    old, tasks, rows = load(args.folder)
    known = {m["label"] for m in old["models"]}
    unknown = sorted({label for labels in pools.values() for label in labels} - known)
    if unknown:
        raise SystemExit(f"not a model of {args.folder / 'eval.json'}: {', '.join(unknown)} (it has: {sorted(known)})")
    same, cross = [], []
    for pair in args.pair:
        model, reference = pair.split("=", 1)
        ref, _, ref_k = reference.partition("@")
        if ref_k:
            cross.append((ref, int(ref_k), model, args.k))
        else:
            same.append((ref, model))
    result = score(tasks, pooled(rows, pools), same, cross)
    members = {label for labels in pools.values() for label in labels}
    models = [m for m in old["models"] if m["label"] not in members] + [{"label": name} for name in pools]
    args.out.mkdir(parents=True, exist_ok=True)
    out = {"pooled_from": str(args.folder), "pools": pools, "models": models, "tasks": old["tasks"], **result}
    (args.out / "eval.json").write_text(json.dumps(out, indent=1) + "\n")
    print(tables(out, args.k, [(m, arm_name(r, k, args.k)) for r, k, m, _ in cross] + [(m, r) for r, m in same]))
    print(many_comparisons(result["deltas"]))


if __name__ == "__main__":
    main()
