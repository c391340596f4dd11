"""Held-out hygiene: what of a held-out evaluation set reaches the seeds, a corpus or a run's generated data.

Two rules, each a plain function over texts:
- `copies`: an item's input (its instruction when it has none) has ROUGE-L F above a threshold with an
  instance's input — the held-out item, copied;
- `answered`: an item's text holds an instance's gold answer together with at least a share of its input's word
  4-grams — the question, answered.
Seeds get the first rule, corpus documents the second, generated triplets both (they are trained on whole). A task
is anything with `name`, `source` and `instances` ({input, output, id?}): an `eval.Task`.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from .errors import SelfSpecError
from .fileio import jsonl_objects
from .filters import NoveltyPool

N = 4  # the n of the word n-grams of the `answered` rule
FIELDS = {"instruction": None, "input": "", "output": ""}  # a record's text, and its value when absent (None: needed)
SNIPPET = 70  # characters of a held-out input or an overlapping span shown in a message


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def grams(ws: list[str], n: int = N) -> set[str]:
    return {" ".join(ws[i : i + n]) for i in range(len(ws) - n + 1)}


def copies(queries: list[str], pooled: list[str], threshold: float) -> list[tuple[int, int, float]]:
    """(query, pooled text, ROUGE-L F) for every query with a pooled text above `threshold`: the first such in
    NoveltyPool's order, whose length and prefix filters skip most pairs unscored."""
    pool = NoveltyPool(threshold)
    for text in pooled:
        pool.add(text)
    return [(q, hit[1], hit[0]) for q, text in enumerate(queries) if (hit := pool.most_similar(text)) is not None]


def longest_span(question: list[str], shared: set[str], n: int = N) -> str:
    """The longest run of the question's words whose every n-gram is in `shared`: the overlap a reader checks."""
    best, at, run = 0, 0, 0  # the longest run of consecutive shared n-grams, and where it starts
    for i in range(len(question) - n + 1):
        run = run + 1 if " ".join(question[i : i + n]) in shared else 0
        if run > best:
            best, at = run, i - run + 1
    return " ".join(question[at : at + best + n - 1]) if best else ""


def answered(docs: list[str], instances: list[dict], overlap: float) -> list[tuple[int, int, float, str]]:
    """(document, instance, share of the instance's input 4-grams, longest shared span) for every pair where the
    document holds the instance's gold answer (as words) and at least `overlap` of those 4-grams (one at least).
    An inverted index (4-gram -> instances) visits only the instances a document shares a 4-gram with."""
    questions = [words(inst["input"]) for inst in instances]
    answers = [" ".join(words(inst["output"])) for inst in instances]
    index: dict[str, list[int]] = {}
    sizes = []
    for j, question in enumerate(questions):
        mine = grams(question)
        sizes.append(len(mine))
        for x in mine:
            index.setdefault(x, []).append(j)
    hits = []
    for d, text in enumerate(docs):
        ws = words(text)
        mine, padded = grams(ws), f" {' '.join(ws)} "
        shared = Counter(j for x in mine for j in index.get(x, ()))
        for j, count in sorted(shared.items()):
            if count / sizes[j] >= overlap and answers[j] and f" {answers[j]} " in padded:
                hits.append((d, j, count / sizes[j], longest_span(questions[j], mine)))
    return hits


def seed_items(seeds: list[dict]) -> list[dict]:
    return [{"label": f"seed {s['id']!r}", "query": s["input"] or s["instruction"], "text": None} for s in seeds]


def document_items(docs: list[dict]) -> list[dict]:
    return [{"label": f"corpus document {d['id']!r}", "query": None, "text": d["text"]} for d in docs]


def triplet_items(records: list[dict]) -> list[dict]:
    return [
        {
            "label": f"triplet {r['id']!r}",
            "query": r["input"] or r["instruction"],
            "text": f"{r['instruction']}\n{r['input']}\n{r['output']}",
        }
        for r in records
    ]


def read_triplets(path: str | Path) -> list[dict]:
    """A run's data.jsonl (or its folder) as {id, instruction, input, output}; its other fields (`docs`,
    `messages`, a plugin's) are ignored, since only the text is checked."""
    path = Path(path)
    path = path / "data.jsonl" if path.is_dir() else path
    records = []
    for lineno, rec in jsonl_objects(path):
        bad = [f for f, absent in FIELDS.items() if not isinstance(rec.get(f, absent), str)]
        if bad:
            raise SelfSpecError(f"{path}:{lineno}: missing string field {bad[0]!r}")
        records.append(
            {
                "id": str(rec.get("id", f"line-{lineno}")),
                **{f: rec.get(f, "") for f in FIELDS},
            }
        )
    if not records:
        raise SelfSpecError(f"{path}: no records in file")
    return records


def held_out(task, i: int) -> str:
    """One held-out instance as a message names it: task, index, its own id, where it was read, its input."""
    inst = task.instances[i]
    own = f"id {inst['id']}, " if inst.get("id") else ""
    return f"{task.name} instance {i} ({own}{task.source}): {snippet(inst['input'])}"


def snippet(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…")


def check(items: list[dict], tasks: list, threshold: float = 0.7, overlap: float = 0.5) -> list[dict]:
    """Every leak of `tasks`' instances into `items` (seed_items, document_items, triplet_items): one finding
    {item, rule, task, instance, score, span, answer} per item and instance it reaches (`copies`: the first)."""
    instances = [(t, i) for t in tasks for i in range(len(t.instances))]
    inputs = [t.instances[i]["input"] for t, i in instances]
    queried = [k for k, item in enumerate(items) if item["query"] is not None]
    texts = [k for k, item in enumerate(items) if item["text"] is not None]
    found = [
        {"item": queried[q], "rule": "copies", "at": instances[j], "score": f, "span": None}
        for q, j, f in copies([items[k]["query"] for k in queried], inputs, threshold)
    ]
    found += [
        {"item": texts[d], "rule": "answered", "at": instances[j], "score": share, "span": span}
        for d, j, share, span in answered(
            [items[k]["text"] for k in texts], [t.instances[i] for t, i in instances], overlap
        )
    ]
    return [
        {
            "item": items[f["item"]]["label"],
            "rule": f["rule"],
            "task": f["at"][0].name,
            "source": f["at"][0].source,
            "instance": f["at"][1],
            "held_out": held_out(*f["at"]),
            "answer": f["at"][0].instances[f["at"][1]]["output"],
            "score": round(f["score"], 4),
            "span": f["span"],
        }
        for f in sorted(found, key=lambda f: f["item"])
    ]


def reached(instances: list[dict], records: list[dict], threshold: float = 0.7, overlap: float = 0.5) -> dict:
    """The instances a training set reaches, by the rules of `check`: {instance index: its first leak,
    {record, rule, score, span}}. The eval's view: how many scored items the adapter may have seen."""
    items = triplet_items(records)
    found: dict[int, dict] = {}
    for d, j, share, span in answered([item["text"] for item in items], instances, overlap):
        found.setdefault(j, {"record": records[d]["id"], "rule": "answered", "score": round(share, 4), "span": span})
    for j, r, f in copies([inst["input"] for inst in instances], [item["query"] for item in items], threshold):
        found[j] = {"record": records[r]["id"], "rule": "copies", "score": round(f, 4), "span": None}
    return dict(sorted(found.items()))


def describe(finding: dict, threshold: float) -> str:
    if finding["rule"] == "copies":
        return (
            f"{finding['item']}: input has ROUGE-L {finding['score']:.2f} > {threshold} with held-out "
            f"{finding['held_out']}"
        )
    answer = " ".join(words(finding["answer"]))
    return (
        f"{finding['item']}: holds the answer {answer!r} of held-out {finding['held_out']} and "
        f"{finding['score']:.0%} of its question's 4-grams (longest shared: {snippet(finding['span'])})"
    )
