"""Re-score a committed eval from its predictions.jsonl with today's scoring: the paired intervals, the sign-flip
p-values and their Holm / Benjamini-Hochberg adjustments, for evals written before eval.json had them.

Every (model, task, k, sampling, item) prediction and its gold are in predictions.jsonl; the tasks' kinds come from
the task files (the shipped held-out tasks and the public benchmarks under ../shared/benchmarks); the comparisons
are the ones the eval.json made.

    .venv/bin/python benchmarks/rescore_eval.py docs/results [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchlib import ROOT

from selfspec_plugin.eval import load_tasks
from selfspec_plugin.eval.scoring import summarize
from selfspec_plugin.report import many_comparisons

SPECS = [
    str(ROOT / "seeds" / "eval" / "biomed.jsonl"),
    f"pubmedqa:{ROOT.parent / 'shared' / 'benchmarks' / 'pubmedqa'}",
    f"ncbi-disease:{ROOT.parent / 'shared' / 'benchmarks' / 'ncbi-disease'}",
]


def load(folder: Path) -> tuple[dict, list, list[dict]]:
    """An eval folder's eval.json, its tasks (from the task files) and its predictions.jsonl rows."""
    old = json.loads((folder / "eval.json").read_text())
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    names = {t["task"] for t in old["tasks"]}
    return old, [t for spec in SPECS for t in load_tasks(spec) if t.name in names], rows


def score(tasks: list, rows: list[dict], pairs: list[tuple[str, str]], cross: list[tuple]) -> dict:
    """summarize() over prediction rows: every request any model was scored on (the base may have more k:
    `base_shots`), in the rows' own order; a model's None is a request it was not scored on."""
    keys = list(dict.fromkeys((r["task"], r["k"], r["sampling"], r["item"]) for r in rows))
    gold = {(r["task"], r["k"], r["sampling"], r["item"]): r["gold"] for r in rows}
    requests = [{"task": t, "k": k, "sampling": s, "gold": gold[(t, k, s, i)]} for t, k, s, i in keys]
    by_key = {(r["model"], r["task"], r["k"], r["sampling"], r["item"]): r["prediction"] for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    preds = {m: [by_key.get((m, *key)) for key in keys] for m in models}
    return summarize(tasks, requests, preds, pairs, cross)


def rescore(folder: Path) -> dict:
    old, tasks, rows = load(folder)
    same_k = [d for d in old["deltas"] if "reference_k" not in d]
    cross = [d for d in old["deltas"] if "reference_k" in d]
    return score(
        tasks,
        rows,
        list(dict.fromkeys((d["reference"], d["model"]) for d in same_k)),
        list(dict.fromkeys((d["reference"], d["reference_k"], d["model"], d["k"]) for d in cross)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an eval's folder: eval.json and predictions.jsonl")
    parser.add_argument("--out", type=Path, help="write the deltas as JSON here")
    args = parser.parse_args()
    deltas = rescore(args.folder)["deltas"]
    print(many_comparisons(deltas))
    for d in deltas:
        t = d["primary"]
        if t["significant"] or t["p_bh"] < 0.05:
            print(
                f"{d['task']} k={d['k']} {d['model']} - {d['reference']} (k={d.get('reference_k', d['k'])}): "
                f"{100 * t['diff']:+.1f} "
                f"[{100 * t['ci'][0]:+.1f}, {100 * t['ci'][1]:+.1f}] p {t['p']:.4f} Holm {t['p_holm']:.3f} "
                f"BH {t['p_bh']:.3f}"
            )
    if args.out:
        args.out.write_text(json.dumps(deltas, indent=1) + "\n")


if __name__ == "__main__":
    main()
