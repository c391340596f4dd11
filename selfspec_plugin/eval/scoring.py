"""Scoring an evaluation: per (task, k, sampling) cell, each task kind's primary metric beside BoX F1 and ROUGE-L;
rows per (model, task, k), averages over tasks, and paired bootstrap deltas between models. Pure functions."""

from __future__ import annotations

import statistics

from .. import metrics


def _label_scores(parsed: list[str | None], golds: list[str | None], labels: list[str]) -> dict:
    return {
        "accuracy": metrics.accuracy(parsed, golds),
        "macro_f1": metrics.macro_f1(parsed, golds, labels),
        "unparseable": sum(label is None for label in parsed),
        "shares": metrics.label_shares(parsed, labels),
        **metrics.baselines(golds, labels),
        "primary_items": [float(p == g) for p, g in zip(parsed, golds)],
    }


def task_scores(task, preds: list[str], golds: list[str]) -> dict:
    """One (task, k, sampling) cell: per-item BoX F1/ROUGE-L lists, the task's standard metrics, and per-item
    scores of its primary metric (`primary_items`): label correctness for label tasks, set F1 for list/entity
    tasks, for label-prefixed answers ("Yes, ...") the token F1 of the text after the label (the label is
    scored apart), token F1 otherwise."""
    out = {
        "f1_items": [metrics.token_f1(p, g) for p, g in zip(preds, golds)],
        "rougeL_items": [metrics.rouge_l(p, g) for p, g in zip(preds, golds)],
        "exact_match": statistics.fmean(metrics.exact_match(p, g) for p, g in zip(preds, golds)),
    }
    kind, labels = task.kind, task.labels
    if kind == "labels":
        out.update(_label_scores([metrics.parse_label(p, labels) for p in preds], golds, labels))
    elif kind == "entities":
        out["primary_items"] = [metrics.set_f1(p, g) for p, g in zip(preds, golds)]
        out.update(set_f1=statistics.fmean(out["primary_items"]), entity_f1=metrics.entity_prf(preds, golds)["f1"])
    elif kind == "labeled_text":
        mine, gold = [metrics.split_label(p, labels) for p in preds], [metrics.split_label(g, labels) for g in golds]
        labelled = [(m, g) for (m, _), (g, _) in zip(mine, gold) if g is not None]  # golds that start with a label
        out.update(_label_scores([m for m, _ in labelled], [g for _, g in labelled], labels))
        out["primary_items"] = [metrics.token_f1(t, g) for (_, t), (_, g) in zip(mine, gold)]
        out["text_f1"] = statistics.fmean(out["primary_items"])
    else:
        out["primary_items"] = out["f1_items"]
    return out


STANDARD = (
    "exact_match",
    "accuracy",
    "macro_f1",
    "unparseable",
    "set_f1",
    "entity_f1",
    "text_f1",
    "majority_accuracy",
    "majority_macro_f1",
    "uniform_accuracy",
    "uniform_macro_f1",
)
PRIMARY = {"labels": "accuracy", "entities": "set F1", "labeled_text": "text F1 after the label", "text": "token F1"}


def _row(model: str, task: str, k: int, runs: list[dict]) -> dict:
    """A (model, task, k) row: means over the demonstration samplings (± std for F1, ROUGE-L, primary)."""
    row = {"model": model, "task": task, "k": k, "n": len(runs[0]["f1_items"]), "samplings": len(runs)}
    for metric in ("f1", "rougeL", "primary"):
        means = [statistics.fmean(run[f"{metric}_items"]) for run in runs]
        row[metric], row[f"{metric}_std"] = statistics.fmean(means), statistics.pstdev(means)
    row.update({m: statistics.fmean(run[m] for run in runs) for m in STANDARD if m in runs[0]})
    if "shares" in runs[0]:
        row["shares"] = {lab: statistics.fmean(run["shares"][lab] for run in runs) for lab in runs[0]["shares"]}
    return row


def summarize(
    tasks: list,
    requests: list[dict],
    preds: dict[str, list[str | None]],
    pairs: list[tuple[str, str]] | None = None,
    cross: list[tuple[str, int, str, int]] = (),
) -> dict:
    """Rows (model × task × k), per-model averages, and for each (reference, model) pair (default: the first model
    against each other one) at every k both are scored at, and each `cross` pair (reference, its k, model, the
    model's k), paired bootstrap deltas of the primary metric and of F1, per task and averaged over tasks, each
    with its sign-flip p-value adjusted for the number of comparisons. A model's None predictions are requests it
    was not scored on (a k only the base is scored at)."""
    by_name = {t.name: t for t in tasks}
    cells: dict[tuple, list[int]] = {}
    for idx, r in enumerate(requests):
        cells.setdefault((r["task"], r["k"], r["sampling"]), []).append(idx)
    rows, items = [], {}
    for model, texts in preds.items():
        groups: dict[tuple, list[dict]] = {}
        for (task, k, s), idxs in cells.items():
            if texts[idxs[0]] is None:
                continue
            scored = task_scores(by_name[task], [texts[i] for i in idxs], [requests[i]["gold"] for i in idxs])
            groups.setdefault((task, k), []).append(scored)
        for (task, k), runs in groups.items():
            rows.append(_row(model, task, k, runs))
            for metric in ("primary", "f1"):
                items[(model, task, k, metric)] = [
                    statistics.fmean(v) for v in zip(*(run[f"{metric}_items"] for run in runs))
                ]
    shots = sorted({r["k"] for r in rows})
    arms = {(r["model"], r["k"]) for r in rows}
    averages = [
        {
            "model": model,
            "k": k,
            **{
                m: statistics.fmean(r[m] for r in rows if r["model"] == model and r["k"] == k)
                for m in ("f1", "rougeL", "primary")
            },
        }
        for model in preds
        for k in shots
        if (model, k) in arms
    ]
    names = list(preds)
    pairs = [(names[0], other) for other in names[1:]] if pairs is None else pairs
    compared = [(ref, k, model, k) for ref, model in pairs for k in shots if {(ref, k), (model, k)} <= arms]
    order = [t.name for t in tasks if t.name in {r["task"] for r in rows}]
    deltas = []
    for ref, ref_k, model, k in [*compared, *cross]:
        for task in [*order, "average"]:
            scope = order if task == "average" else [task]
            deltas.append(
                {
                    "task": task,
                    "k": k,
                    "reference": ref,
                    **({"reference_k": ref_k} if ref_k != k else {}),
                    "model": model,
                    **{
                        metric: metrics.stratified_bootstrap(
                            [items[(ref, t, ref_k, metric)] for t in scope],
                            [items[(model, t, k, metric)] for t in scope],
                        )
                        for metric in ("primary", "f1")
                    },
                }
            )
    adjust_for_many(deltas)
    return {"rows": rows, "averages": averages, "deltas": deltas}


def adjust_for_many(deltas: list[dict]) -> None:
    """Every paired comparison of one metric is one family (all pairs, k and tasks, the averages included): each
    gets its Holm (family-wise) and Benjamini-Hochberg (false discovery rate) adjusted p-value, in place."""
    for metric in ("primary", "f1"):
        tests = [d[metric] for d in deltas]
        ps = [t["p"] for t in tests]
        for t, h, b in zip(tests, metrics.holm(ps), metrics.benjamini_hochberg(ps)):
            t.update(p_holm=h, p_bh=b)
