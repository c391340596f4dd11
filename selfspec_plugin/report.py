"""Human-readable views of a run: the one-screen funnel, `selfspec inspect`, and the dataset card."""

from __future__ import annotations

import base64
import html
import random
import re
from collections import Counter
from pathlib import Path

from . import fileio, plots
from .dataset import DATA, REJECTED, Manifest
from .funnel import advice, label_shares, summary


def inspect(run_dir: Path, samples: int = 5, seed: int = 0) -> str:
    """Funnel, rejection reasons with an example each, and random kept triplets."""
    run_dir = Path(run_dir)
    manifest = Manifest.load(run_dir).to_dict()
    data = fileio.read_jsonl(run_dir / DATA) if (run_dir / DATA).is_file() else []
    rejected = fileio.read_jsonl(run_dir / REJECTED)
    lines = [summary(manifest, run_dir)]
    if manifest.get("unfinished"):
        settings = manifest["inputs"].get("settings", {})
        lines += [
            f"  UNFINISHED     {manifest['unfinished']}: nothing to train on",
            *(f"    {a}" for a in advice(manifest["counts"], settings)),
        ]
    lines += ["", "rejections (reason: count, example)"]
    by_reason: dict[str, list[dict]] = {}
    for rec in rejected:
        by_reason.setdefault(rec["rejected"].split(":")[0], []).append(rec)
    for reason, recs in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        example = recs[0].get("instruction") or recs[0].get("raw") or ""
        lines.append(f"  {reason:20s} {len(recs):6d}  {_short(example)}")
    lines += ["", *label_lines(label_shares(data)), "", *drift_lines(manifest, data)]
    lines += ["", f"{min(samples, len(data))} random kept triplets"]
    for row in random.Random(seed).sample(data, min(samples, len(data))):
        lines += [
            f"  [{row['id']}] instruction: {_short(row['instruction'], 200)}",
            f"      input: {_short(row['input'], 200) or '(none)'}",
            f"      output: {_short(row['output'], 200)}",
        ]
    return "\n".join(lines)


def label_lines(shares: dict, top: int = 10) -> list[str]:
    head = f"short outputs (<= {shares['max_words']} words): {shares['short']} of {shares['total']} triplets" + (
        ", share of each:" if shares["short"] else ""
    )
    return [head] + [
        f"  {label or '(empty)':30s} {n:6d}  {100 * share:5.1f}%" for label, n, share in shares["labels"][:top]
    ]


def drift_lines(manifest: dict, data: list[dict]) -> list[str]:
    d = manifest.get("drift")
    if not d:
        return []
    by_id = {r["id"]: r for r in data}
    lines = [
        f"domain drift: median {d['median']} of an instruction + input's content words are in the {d['reference']} "
        f"vocabulary; {d['below']} of {d['scored']} triplets below {d['threshold']}. Lowest:"
    ]
    return lines + [f"  [{i}] {_short(by_id[i]['instruction'], 100)}" for i in d["lowest"] if i in by_id]


def _short(text: str, width: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


# The task-type mix and the verb-noun analysis use documented heuristics, not a parser: no POS model can be
# installed offline here (spaCy's models and NLTK's tagger data come from hubs, not PyPI). docs/report.md.
TASK_TYPES = (  # first match wins
    (
        "relation extraction",
        r"\b(relation|relationship|interact\w*)\b.*\bbetween\b|\bbetween\b.*\b(relation|interact\w*)",
    ),
    ("summarization", r"\bsummar\w*|\bcondense|\btl;?dr"),
    (
        "classification",
        r"\bclassif\w*|\bcategori\w*|\blabel\b|\bsentiment\b|\byes or no\b|\btrue or false\b|\bwhich (category|class)\b",
    ),
    (
        "information extraction",
        r"\bextract\w*|\bnamed entit\w*|\bentities\b|\b(identify|list|find) (all|every|each)\b|\bmention(s|ed)?\b",
    ),
    (
        "explanation",
        r"^(explain|describe|why|how does|how do|how is|how are|discuss|provide an? (explanation|description))\b",
    ),
    (
        "reasoning",
        r"^(determine|calculate|compute|compare|infer|predict|estimate|evaluate|assess|decide|rank|sort|order|organi[sz]e)\b",
    ),
    ("rewriting", r"^(convert|rewrite|translate|paraphrase|rephrase|simplify|correct|edit|transform|change|format)\b"),
    ("question answering", r"^(what|which|who|whom|whose|when|where|how|is|are|does|do|can|should|answer)\b|\?\s*$"),
    ("generation", r"^(write|generate|create|compose|draft|propose|suggest|design|give|provide|make|develop)\b"),
    ("information extraction", r"^(find|identify|list|locate|select|pick|highlight)\b"),
)
NOT_VERBS = {
    "what",
    "which",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "why",
    "how",
    "is",
    "are",
    "was",
    "were",
    "does",
    "do",
    "did",
    "can",
    "could",
    "should",
    "would",
    "will",
    "in",
    "for",
    "given",
    "based",
    "using",
    "if",
    "the",
    "a",
    "an",
    "this",
    "please",
    "from",
    "to",
    "as",
    "on",
    "with",
    "after",
    "before",
}
NOT_NOUNS = {
    "the",
    "a",
    "an",
    "all",
    "any",
    "each",
    "every",
    "this",
    "these",
    "that",
    "those",
    "following",
    "given",
    "provided",
    "its",
    "their",
    "his",
    "her",
    "our",
    "your",
    "my",
    "me",
    "us",
    "it",
    "them",
    "whether",
    "if",
    "out",
    "up",
    "down",
    "of",
    "to",
    "for",
    "in",
    "on",
    "from",
    "with",
    "by",
    "about",
    "and",
    "or",
    "main",
    "key",
    "most",
    "more",
    "some",
    "two",
    "three",
    "one",
    "which",
    "what",
    "how",
    "whether",
    "between",
    "at",
    "appropriate",
    "short",
    "random",
    "correct",
    "relevant",
    "possible",
    "new",
    "different",
    "specific",
    "potential",
    "best",
    "common",
    "other",
    "same",
    "single",
    "simple",
    "medical",
    "clinical",
    "following",
}
ADJECTIVE_ENDINGS = ("able", "ible", "ous", "ive", "ful", "ical", "est")


def task_type(instruction: str) -> str:
    text = " ".join(instruction.lower().split())
    return next((name for name, pattern in TASK_TYPES if re.search(pattern, text)), "other")


def verb_noun(instruction: str) -> tuple[str, str] | None:
    """(root verb, first noun object) of an imperative instruction: the first word when it is not a
    question or function word, and the first later word that is not a determiner or function word."""
    words = re.findall(r"[a-z][a-z-]*", instruction.lower())
    if len(words) < 2 or words[0] in NOT_VERBS:
        return None
    noun = next(
        (w for w in words[1:6] if w not in NOT_NOUNS and len(w) > 2 and not w.endswith(ADJECTIVE_ENDINGS)), None
    )
    return (words[0], noun) if noun else None


def report_stats(manifest: dict, data: list[dict]) -> dict:
    """Everything the HTML report shows, as plain numbers (pure)."""
    pairs = [vn for vn in (verb_noun(r["instruction"]) for r in data) if vn]
    verbs = Counter(v for v, _ in pairs)
    return {
        "types": Counter(task_type(r["instruction"]) for r in data).most_common(),
        "lengths": [len(r["instruction"].split()) for r in data],
        "verbs": [
            (verb, count, Counter(n for v, n in pairs if v == verb).most_common(4))
            for verb, count in verbs.most_common(20)
        ],
        "verb_share": len(pairs) / len(data) if data else 0.0,
        "rejected": sorted(manifest["counts"]["rejected"].items(), key=lambda kv: -kv[1]),
    }


def html_report(run_dir: Path, samples: int = 8, seed: int = 0) -> Path:
    """`selfspec inspect RUN_DIR --report`: run_dir/report/ with report.html (figures embedded) + the PNGs."""
    run_dir = Path(run_dir)
    manifest = Manifest.load(run_dir).to_dict()
    data = fileio.read_jsonl(run_dir / DATA)
    stats = report_stats(manifest, data)
    shares = label_shares(data)
    c, stages = manifest["counts"], manifest["stages"]
    funnel = [
        ("brainstorming prompts", stages["instructions"]["prompts"]),
        ("instructions kept", c["instructions_kept"]),
        ("triplets", c["triplets"]),
    ]
    figures = {
        "funnel.png": plots.barh(
            [k for k, _ in funnel] + [f"rejected: {k}" for k, _ in stats["rejected"]],
            [v for _, v in funnel] + [v for _, v in stats["rejected"]],
            "Funnel and rejection reasons",
            "count",
        ),
        "task-types.png": plots.barh(
            [k for k, _ in stats["types"]],
            [v for _, v in stats["types"]],
            "Task-type mix of the triplets (keyword heuristic)",
            "triplets",
        ),
        "lengths.png": plots.histogram(stats["lengths"], "Instruction length", "words"),
        "labels.png": plots.barh(
            [_short(label, 40) or "(empty)" for label, _, _ in shares["labels"][:15]],
            [n for _, n, _ in shares["labels"][:15]],
            f"Short outputs (<= {shares['max_words']} words): {shares['short']} of {shares['total']}",
            "triplets",
        ),
        "verbs.png": plots.barh(
            [v for v, _, _ in stats["verbs"]],
            [n for _, n, _ in stats["verbs"]],
            "Most common root verbs (first-word heuristic)",
            "triplets",
        ),
    }
    out = run_dir / "report"
    for name, png in figures.items():
        fileio.write_bytes(out / name, png)
    rows = random.Random(seed).sample(data, min(samples, len(data)))
    fileio.write_text(out / "report.html", _html(manifest, run_dir, stats, figures, rows, shares, data))
    return out / "report.html"


def _html(
    manifest: dict,
    run_dir: Path,
    stats: dict,
    figures: dict[str, bytes],
    rows: list[dict],
    shares: dict,
    data: list[dict],
) -> str:
    e = html.escape

    def img(name: str) -> str:
        return f'<img alt="{e(name)}" src="data:image/png;base64,{base64.b64encode(figures[name]).decode()}">'

    verbs = "".join(
        f"<tr><td>{e(v)}</td><td>{n}</td><td>{e(', '.join(f'{w} ({k})' for w, k in nouns))}</td></tr>"
        for v, n, nouns in stats["verbs"]
    )
    samples = "".join(
        f"<tr><td>{e(r['id'])}</td><td>{e(r['instruction'])}</td><td>{e(_short(r['input'], 300))}</td>"
        f"<td>{e(_short(r['output'], 300))}</td></tr>"
        for r in rows
    )
    labels = "".join(
        f"<tr><td>{e(label or '(empty)')}</td><td>{n}</td><td>{100 * share:.1f}%</td></tr>"
        for label, n, share in shares["labels"][:15]
    )
    drift = "\n".join(drift_lines(manifest, data))
    settings = manifest["inputs"]["settings"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>selfspec report {e(manifest["run_key"])}</title>
<style>body{{font:14px/1.45 system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}}
img{{max-width:100%}}pre{{background:#f5f5f5;padding:1em;overflow-x:auto}}</style></head><body>
<h1>selfspec data report</h1>
<p>Run <code>{e(str(run_dir))}</code>, model <code>{e(manifest["model"])}</code>, domain {e(settings["domain"])},
{manifest["counts"]["seeds"]} seeds, backend {e(manifest["backend"])} ({e(manifest["prompt_format"])} prompts).</p>
<h2>Funnel</h2><pre>{e(summary(manifest, run_dir))}</pre>{img("funnel.png")}
<h2>Label balance</h2><p>{shares["short"]} of {shares["total"]} triplets have an output of at most
{shares["max_words"]} words (a label, a yes/no, an entity). Share of each distinct short output; one label
taking most of them means the adapter will learn to answer it whatever the question.</p>{img("labels.png")}
<table><tr><th>short output</th><th>triplets</th><th>share of short outputs</th></tr>{labels}</table>
<h2>Domain drift</h2><pre>{e(drift) or "not measured in this run"}</pre>
<h2>Task types</h2><p>A keyword heuristic (report.TASK_TYPES), not a classifier model.</p>{img("task-types.png")}
<h2>Instruction length</h2>{img("lengths.png")}
<h2>Verbs and their objects</h2><p>{100 * stats["verb_share"]:.0f}% of the instructions start with a verb
(first word, not a question or function word); its object is the first later content word. The paper's analysis used a
parser; this heuristic counts the same imperative "verb + noun" structure.</p>{img("verbs.png")}
<table><tr><th>verb</th><th>instructions</th><th>most common objects</th></tr>{verbs}</table>
<h2>Random kept triplets</h2>
<table><tr><th>id</th><th>instruction</th><th>input</th><th>output</th></tr>{samples}</table>
</body></html>
"""


# ---- the eval's tables (selfspec eval writes them to eval.md) ----------------------------------------------------


def _pm(row: dict, metric: str) -> str:
    value = f"{100 * row[metric]:.1f}"
    return value + (f" ± {100 * row[metric + '_std']:.1f}" if row["samplings"] > 1 else "")


def _standard(row: dict) -> str:
    """The task's own numbers: labels with the input-blind baselines and the answer shares."""
    parts = []
    if "accuracy" in row:
        shares = ", ".join(f"{lab} {100 * v:.0f}%" for lab, v in row["shares"].items() if v)
        parts.append(
            f"acc {100 * row['accuracy']:.1f} (majority {100 * row['majority_accuracy']:.1f}, uniform "
            f"{100 * row['uniform_accuracy']:.1f}), macro-F1 {100 * row['macro_f1']:.1f} (majority "
            f"{100 * row['majority_macro_f1']:.1f}), unparseable {row['unparseable']:.1f}; answers: {shares}"
        )
    if "text_f1" in row:
        parts.append(f"text F1 {100 * row['text_f1']:.1f}")
    if "set_f1" in row:
        parts.append(f"set F1 {100 * row['set_f1']:.1f}, entity F1 {100 * row['entity_f1']:.1f}")
    return "; ".join(parts) or f"EM {100 * row['exact_match']:.1f}"


def _ci(d: dict) -> str:
    cell = f"{100 * d['diff']:+.1f} [{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}]" + (
        " *" if d["significant"] else ""
    )
    if "p_holm" in d:  # (results written before the adjustments have none)
        cell += f" p {_p(d['p'])}, Holm {_p(d['p_holm'])}, BH {_p(d['p_bh'])}"
    return cell


def _reference(delta: dict) -> str:
    """The reference of a paired difference, with its own k when it was scored at another (the base at k = 5)."""
    return f"{delta['reference']} (k={delta['reference_k']})" if "reference_k" in delta else delta["reference"]


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


def many_comparisons(deltas: list[dict], alpha: float = 0.05) -> str:
    """One sentence per metric: how many paired comparisons, and how many survive each adjustment."""
    if not deltas or "p_holm" not in deltas[0]["primary"]:
        return ""
    said = []
    for metric, name in (("primary", "primary metric"), ("f1", "BoX F1")):
        tests = [d[metric] for d in deltas]
        said.append(
            f"{len(tests)} paired comparisons of the {name}: {sum(t['significant'] for t in tests)} intervals "
            f"exclude 0, {sum(t['p_holm'] < alpha for t in tests)} survive Holm and "
            f"{sum(t['p_bh'] < alpha for t in tests)} Benjamini-Hochberg at {alpha}."
        )
    return " ".join(said)


def markdown_table(result: dict) -> str:
    """Per task and k: every model's primary metric (± std over demo samplings) and BoX F1; the paired differences
    with their 95% intervals; each model's standard metrics (label baselines and answer shares)."""
    labels = [m["label"] for m in result["models"]]
    rows = {(r["model"], r["task"], r["k"]): r for r in result["rows"]}
    kinds = {t["task"]: t["primary"] for t in result["tasks"]}
    head = ["task", "k", "n", "primary"] + labels + [f"{m} BoX F1" for m in labels]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in result["shots"]:
        for t in kinds:
            scored = [rows.get((m, t, k)) for m in labels]  # None: a model not scored at this k (`base_shots`)
            first = next(r for r in scored if r)
            lines.append(
                "| "
                + " | ".join(
                    [t, str(k), str(first["n"]), kinds[t]]
                    + [_pm(r, "primary") if r else "–" for r in scored]
                    + [_pm(r, "f1") if r else "–" for r in scored]
                )
                + " |"
            )
    lines += [""] + [
        f"- average over tasks, {a['model']}, k={a['k']}: primary {100 * a['primary']:.2f}, F1 {100 * a['f1']:.2f}, "
        f"ROUGE-L {100 * a['rougeL']:.2f}"
        for a in result["averages"]
    ]
    if result["deltas"]:
        lines += [
            "",
            "| task | k | model − reference | Δ primary [95% CI] | Δ BoX F1 [95% CI] |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {d['task']} | {d['k']} | {d['model']} − {_reference(d)} | {_ci(d['primary'])} | {_ci(d['f1'])} |"
            for d in result["deltas"]
        ]
        if many := many_comparisons(result["deltas"]):
            lines += ["", many]
    lines += ["", "| task | k | model | standard metrics |", "|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['k']} | {r['model']} | {_standard(r)} |" for r in result["rows"]]
    if result.get("training_overlap"):
        lines += ["", "Held-out items in the adapters' training data (`selfspec decontaminate`, docs/eval.md):", ""]
        lines += overlap_lines(result["training_overlap"])
    models = ", ".join(f"{m['label']} = {m['adapter'] or 'base'} ({m['format']} prompts)" for m in result["models"])
    lines += [
        "",
        "Scores in %. primary: the task's own metric (labels: accuracy; lists/entities: set F1; yes/no-prefixed "
        "answers: token F1 of the text after the label; else token F1). BoX F1: the paper's metric. `*`: the "
        "paired bootstrap 95% interval excludes 0 (average rows: items resampled within each task); p: a paired "
        "sign-flip test, Holm and BH: adjusted over every comparison of that metric in this table. "
        f"{_how_asked(result)} Model `{result['model']}`: {models}; backend {result['backend']}, "
        f"{result['wall_seconds']} s.",
    ]
    return "\n".join(lines) + "\n"


def _how_asked(result: dict) -> str:
    """The demonstrations and the items scored, in words (a k = 0 run has no demonstration samplings)."""
    demos = (
        f"{result['samplings']} demonstration samplings for k > 0 (mean ± std)"
        if any(k > 0 for k in result["shots"])
        else "k = 0 only: no demonstrations, one prompt per item"
    )
    if result.get("base_shots"):
        demos += f"; the base alone also at k = {', '.join(map(str, result['base_shots']))}"
    items = f"at most {result['limit']} items per task" if result["limit"] else "every item of each task"
    return f"{demos}; {items}."


def overlap_lines(rows: list[dict]) -> list[str]:
    """eval's `training_overlap` rows as lines: per task, the scored items an adapter's training data reaches, with
    up to two examples (the item, the training record, the ROUGE-L or the shared words)."""

    def example(e: dict) -> str:
        how = (
            f"ROUGE-L {e['score']:.2f} with its input"
            if e["rule"] == "copies"
            else f"holds its answer and {e['score']:.0%} of its input's 4-grams, e.g. {e['span']}"
        )
        own = f" (id {e['id']})" if e["id"] else ""
        return f"item {e['item']}{own} {e['input']}: triplet {e['record']!r} {how}"

    lines = []
    for r in rows:
        if r["task"] is None:
            lines.append(f"- adapter {r['model']}: {r['note']}")
            continue
        examples = "; ".join(example(e) for e in r["examples"])
        lines.append(
            f"- {r['task']}: {r['overlapping']} of {r['items']} items overlap the training data of adapter "
            f"{r['model']} ({r['data']})" + (f", e.g. {examples}" if examples else "")
        )
    return lines
