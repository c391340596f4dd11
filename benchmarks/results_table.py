"""The wide tables of docs/results.md from an eval's eval.json: per task, every model's primary metric (each arm a
column: a model at its k), the paired differences with their 95 % intervals (`*`: the interval excludes 0; with
Holm's adjusted p where the eval has it), the averages (primary and BoX F1), and the label tasks' answer shares.

    .venv/bin/python benchmarks/results_table.py EVAL_DIR [--k 0] [--pair MODEL=REFERENCE ...]

A column is `label` at the table's k, `label (k=K)` at another (the base at `base_shots`). Without `--pair`, every
difference the eval made with a model at the table's k is shown, in the eval's order.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def arm_name(label: str, k: int, table_k: int) -> str:
    return label if k == table_k else f"{label} (k={k})"


def reference(delta: dict, k: int) -> str:
    """A difference's reference as a column name: its label, with its own k when that is not the table's."""
    return arm_name(delta["reference"], delta.get("reference_k", k), k)


def cell(test: dict) -> str:
    star = " *" if test["significant"] else ""
    holm = f", Holm {test['p_holm']:.2f}" if "p_holm" in test and test["significant"] else ""
    return f"{100 * test['diff']:+.1f} [{100 * test['ci'][0]:+.1f}, {100 * test['ci'][1]:+.1f}]{star}{holm}"


def flipped(d: dict, k: int) -> dict:
    """The same difference read the other way round (reference − model): signs and interval ends swapped."""
    turn = lambda t: {**t, "diff": 0.0 - t["diff"], "ci": [0.0 - t["ci"][1], 0.0 - t["ci"][0]]}  # noqa: E731
    return {**d, "model": reference(d, k), "reference": d["model"],
            "primary": turn(d["primary"]), "f1": turn(d["f1"])}  # fmt: skip


def tables(result: dict, k: int, pairs: list[tuple[str, str]] | None = None) -> str:
    """The markdown of the two tables for the models at k (and the references they were compared with)."""
    deltas = [d for d in result["deltas"] if d["k"] == k]
    by = {(d["model"], reference(d, k), d["task"]): d for d in deltas}
    for f in (flipped(d, k) for d in deltas if "reference_k" not in d):
        by.setdefault((f["model"], f["reference"], f["task"]), f)
    if pairs:
        missing = [p for p in pairs if (*p, "average") not in by]
        if missing:
            raise SystemExit(f"no such difference in the eval: {missing}")
        comparisons = pairs
    else:
        comparisons = list(dict.fromkeys((d["model"], reference(d, k)) for d in deltas))
    arms = [
        (m["label"], k)
        for m in result["models"]
        if any(r["model"] == m["label"] and r["k"] == k for r in result["rows"])
    ]
    arms += sorted({(d["reference"], d["reference_k"]) for d in deltas if "reference_k" in d})
    rows = {(r["model"], r["task"], r["k"]): r for r in result["rows"]}
    kinds = {t["task"]: t["primary"] for t in result["tasks"]}
    names = [arm_name(label, ak, k) for label, ak in arms]
    head = ["task", "n", "primary", *names, *(f"{m} − {r}" for m, r in comparisons)]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task, kind in kinds.items():
        n = rows[(arms[0][0], task, arms[0][1])]["n"]
        scores = [f"{100 * rows[(label, task, ak)]['primary']:.1f}" for label, ak in arms]
        diffs = [cell(by[(m, r, task)]["primary"]) for m, r in comparisons]
        out.append("| " + " | ".join([task, str(n), kind, *scores, *diffs]) + " |")
    averages = {(a["model"], a["k"]): a for a in result["averages"]}
    for metric, name in (("primary", "**average**"), ("f1", "average BoX F1")):
        scores = [f"{100 * averages[(label, ak)][metric]:.1f}" for label, ak in arms]
        diffs = [cell(by[(m, r, "average")][metric]) for m, r in comparisons]
        out.append("| " + " | ".join([name, "", "", *scores, *diffs]) + " |")
    out += ["", "| task | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for task in kinds:
        if not any("shares" in rows[(label, task, ak)] for label, ak in arms):  # label tasks and yes/no answers
            continue
        shares = []
        for label, ak in arms:
            got = rows[(label, task, ak)].get("shares", {})
            shares.append(
                ", ".join(
                    f"{lab} {100 * v:.0f}%" for lab, v in sorted(got.items(), key=lambda x: -x[1]) if round(100 * v)
                )
            )
        out.append(f"| {task} | " + " | ".join(shares) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--k", type=int, default=0)
    ap.add_argument("--pair", action="append", metavar="MODEL=REFERENCE", help="a difference to show; repeat")
    args = ap.parse_args()
    result = json.loads((args.folder / "eval.json").read_text())
    pairs = [tuple(p.split("=", 1)) for p in args.pair] if args.pair else None
    print(tables(result, args.k, pairs), end="")


if __name__ == "__main__":
    main()
