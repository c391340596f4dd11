"""Held-out evaluation tasks: a task-spec file of our own, or a public benchmark read where it lies.

A task is a `Task`: `name`, `kind`, `definition`, `demos` and `instances` (lists of {input, output}), `labels`
for label tasks, `max_tokens`, `source`. Kinds: `labels` (the answer is one of `labels`), `entities`
(a list of items or mentions, scored as sets), `labeled_text` (a label word, then free text: "Yes, the trial
showed ..."; the two are scored apart), `text` (free text). Benchmarks are
read in place (their licences differ) and never copied; their demonstrations come from a split other
than the one scored.

Specs: `PATH.jsonl` (one task per line, e.g. seeds/eval/biomed.jsonl), or `NAME:PATH` for a loader registered
through the `register_tasks` hook: the built-ins are `pubmedqa:DIR`, `ncbi-disease:DIR`, `fpb:FILE-or-DIR`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .. import fileio, registry
from ..errors import SelfSpecError

KINDS = ("text", "labels", "entities", "labeled_text")


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # one of KINDS
    definition: str  # what the model is asked to do
    demos: list  # [{input, output}]: the pool k-shot demonstrations are drawn from (never scored)
    instances: list  # [{input, output}]: the scored items
    source: str  # where it was read
    labels: Optional[list] = None  # label tasks: the answers
    max_tokens: int = 64  # generation cap of one answer


def loaders() -> dict:
    """Task loaders by spec prefix, from every plugin's `register_tasks`."""
    return registry.task_loaders()


def spec_path(spec: str) -> tuple[str, str]:
    """A task spec as (prefix, path): `pubmedqa:DIR` -> ('pubmedqa:', 'DIR'), a task file -> ('', FILE)."""
    name, sep, path = spec.partition(":")
    return (f"{name}:", path) if sep and name in loaders() else ("", spec)


def load_tasks(spec: str) -> list[Task]:
    prefix, path = spec_path(spec)
    if not prefix:
        return load_task_file(Path(path))
    found = loaders()[prefix[:-1]](Path(path))
    return found if isinstance(found, list) else [found]


def load_task_file(path: Path) -> list[Task]:
    """Our task-spec jsonl: {task, definition, demos, instances, kind?, labels?, max_tokens?} per line."""
    tasks = []
    for lineno, rec in fileio.jsonl_objects(path):
        where = f"{path}:{lineno}"
        for field in ("task", "definition"):
            if not isinstance(rec.get(field), str) or not rec[field].strip():
                raise SelfSpecError(f"{where}: missing string field {field!r}")
        for field in ("demos", "instances"):
            items = rec.get(field)
            if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("input"), str) and isinstance(i.get("output"), str)
                for i in items
            ):
                raise SelfSpecError(f"{where}: field {field!r} must be a list of {{input, output}} strings")
        if not rec["instances"]:
            raise SelfSpecError(f"{where}: task {rec['task']!r} has no instances")
        kind = rec.get("kind", "text")
        if kind not in KINDS:
            raise SelfSpecError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
        if kind in ("labels", "labeled_text") and not (isinstance(rec.get("labels"), list) and rec["labels"]):
            raise SelfSpecError(f"{where}: a {kind!r} task needs a non-empty 'labels' list")
        tasks.append(
            Task(
                rec["task"],
                kind,
                rec["definition"],
                rec["demos"],
                rec["instances"],
                f"{path}",
                labels=rec.get("labels"),
                max_tokens=int(rec.get("max_tokens", 64)),
            )
        )
    if not tasks:
        raise SelfSpecError(f"{path}: no tasks in file")
    return tasks


def _read_json(path: Path):
    try:
        return json.loads(fileio.read_text(path))
    except SelfSpecError as exc:
        raise SelfSpecError(f"{path}: file not found" if not path.exists() else str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise SelfSpecError(f"{path}: not valid JSON ({exc})") from None


def pubmedqa(path: Path) -> Task:
    """PubMedQA expert-labelled set (ori_pqal.json): the official 500-question test split is scored;
    demonstrations come from the other 500 questions."""
    folder = path if path.is_dir() else path.parent
    data = _read_json(folder / "ori_pqal.json")
    test = _read_json(folder / "test_ground_truth.json")

    def item(pmid: str) -> dict:
        rec = data[pmid]
        context = " ".join(rec["CONTEXTS"])
        return {
            "id": pmid,
            "input": f"Context: {context}\nQuestion: {rec['QUESTION']}",
            "output": rec["final_decision"],
        }

    return Task(
        "pubmedqa",
        "labels",
        "Given the abstract of a biomedical research article and a research question, answer the question "
        "with yes, no or maybe according to the abstract. Output only yes, no or maybe.",
        demos=[item(p) for p in data if p not in test],
        instances=[item(p) for p in test if p in data],
        source=str(folder / "ori_pqal.json"),
        labels=["yes", "no", "maybe"],
        max_tokens=8,
    )


def read_pubtator(path: Path) -> list[dict]:
    """PubTator documents in file order: {id, text (title + abstract), mentions (in order of appearance)}.
    A `|t|` line starts a document (a PMID may occur twice: NCBI's training set has one such pair)."""
    docs: list[dict] = []
    for lineno, line in fileio.text_lines(path):
        head = line[:20]
        if "|t|" in head:
            pmid, _, title = line.split("|", 2)
            docs.append({"id": pmid, "title": title.strip(), "abstract": "", "mentions": []})
        elif "|a|" in head and docs and line.startswith(docs[-1]["id"] + "|"):
            docs[-1]["abstract"] = line.split("|", 2)[2].strip()
        elif line.strip():
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 4 or not docs or fields[0] != docs[-1]["id"] or not fields[1].isdigit():
                raise SelfSpecError(f"{path}:{lineno}: not a PubTator title, abstract or annotation line")
            docs[-1]["mentions"].append((int(fields[1]), fields[3]))
    return [
        {
            "id": d["id"],
            "text": f"{d['title']} {d['abstract']}",
            "mentions": list(dict.fromkeys(m for _, m in sorted(d["mentions"]))),
        }
        for d in docs
    ]


def ncbi_disease(path: Path) -> Task:
    """NCBI-disease: the 100 test abstracts are scored; demonstrations come from the training abstracts."""
    folder = path if path.is_dir() else path.parent

    def items(name: str) -> list[dict]:
        return [
            {"id": d["id"], "input": d["text"], "output": ", ".join(d["mentions"]) or "none"}
            for d in read_pubtator(folder / name)
        ]

    return Task(
        "ncbi_disease",
        "entities",
        "List every disease mentioned in the biomedical abstract, exactly as written in the text, separated "
        "by ', '. Output 'none' if no disease is mentioned.",
        demos=items("NCBItrainset_corpus.txt"),
        instances=items("NCBItestset_corpus.txt"),
        source=str(folder / "NCBItestset_corpus.txt"),
        max_tokens=128,
    )


def fpb(path: Path) -> Task:
    """Financial PhraseBank (all annotators agree), latin-1 `sentence@label` lines. A fixed 10% (by hash of
    the sentence) is the demonstration pool; the rest is scored."""
    file = path / "Sentences_AllAgree.txt" if path.is_dir() else path
    try:
        lines = file.read_text(encoding="latin-1").splitlines()
    except OSError as exc:
        raise SelfSpecError(f"{file}: cannot read ({exc.strerror or exc})") from None
    demos, instances = [], []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        sentence, sep, label = line.rpartition("@")
        if not sep or label.strip() not in ("positive", "negative", "neutral"):
            raise SelfSpecError(f"{file}:{lineno}: expected 'sentence@positive|negative|neutral'")
        rec = {"id": f"fpb-{lineno}", "input": sentence.strip(), "output": label.strip()}
        (demos if hashlib.sha256(sentence.encode()).digest()[0] < 26 else instances).append(rec)
    return Task(
        "fpb",
        "labels",
        "Classify the sentiment that the sentence from financial news expresses for the company's investors: "
        "positive, negative or neutral. Output only the label.",
        demos=demos,
        instances=instances,
        source=str(file),
        labels=["positive", "negative", "neutral"],
        max_tokens=8,
    )


BUILTIN = {"pubmedqa": pubmedqa, "ncbi-disease": ncbi_disease, "fpb": fpb}  # registered by builtins/tasks.py
