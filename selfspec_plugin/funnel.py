"""What a run says about itself, written with it: the funnel in one line and on one screen, the advice for its
leading rejections, the review of a poor run, and the dataset card. The run layer writes them (runner.py); the
report (`selfspec inspect`, report.html) shows them again."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .corpus import cited_sources
from .dataset import DATA
from .filters import short_answer

LABEL_MAX_WORDS = 3  # outputs this short are labels ("yes", "no", "positive", an entity): their mix is shown


def label_shares(data: list[dict], max_words: int = LABEL_MAX_WORDS) -> dict:
    """The share of each distinct short output among the triplets whose output has at most `max_words` words
    (case and end punctuation ignored): a generator that answers "no" to everything shows up here before training."""
    labels = Counter(label for r in data if (label := short_answer(r["output"], max_words)) is not None)
    short = sum(labels.values())
    return {
        "short": short,
        "total": len(data),
        "max_words": max_words,
        "labels": [(label, n, round(n / short, 3)) for label, n in labels.most_common()],
    }


# What to change when a rejection reason dominates a run (`{key}`: the run's setting of that name).
FIXES = {
    "truncated_response": "answers were cut at response_max_tokens={response_max_tokens}: raise it (answers that "
    "loop to any cap need a larger model)",
    "truncated": "brainstormed items were cut at instruction_max_tokens={instruction_max_tokens}: raise it",
    "unparseable": "brainstormed text did not follow the numbered Instruction/Input list: try instruction_items: 1",
    "similar": "brainstorming repeats itself: add more varied seeds",
    "copied": "answers restate their task: raise response_demos, or use a larger model",
    "verbatim": "answers copy their task word for word: raise response_demos, or use a larger model",
    "unasked_label": "answers are a bare label the task did not ask for: seeds with full answers help",
    "label_share": "one short answer is over max_label_share={max_label_share}: raise it, or vary the seed answers",
    "off_domain": "instructions drift off `{domain}`: check the domain name, or lower min_domain_overlap",
    "too_short": "instructions are shorter than min_words={min_words}",
    "too_long": "instructions are longer than max_words={max_words}",
    "blacklist": "instructions name things a language model cannot do (the blacklist)",
    "bad_start": "instructions start with punctuation or a non-ASCII character",
    "empty_response": "the model answers with nothing: raise response_demos",
    "placeholder_response": "the model answers with the <noinput> placeholder: raise response_demos",
    "prompt_too_long": "prompts do not fit the model's context: raise vllm.max_model_len, or lower retrieval_k",
}
POOR_SHARE = 0.3  # fewer triplets than this share of the request: poor (below what a small generator keeps)
LABEL_WARN_SHARE = 0.25  # one short answer above this share of the data: an adapter learns to answer it to anything


def funnel_text(counts: dict, top: int | None = None) -> str:
    """The funnel in one line: `3 instructions kept, 0 triplets (4 instructions requested); rejected:
    truncated_response 3` (the `top` reasons, when given)."""
    ranked = sorted(counts["rejected"].items(), key=lambda kv: -kv[1])[:top]
    reasons = ", ".join(f"{k} {v}" for k, v in ranked) or "none"
    unit = counts.get("requested_unit", "instructions")
    return (
        f"{counts['instructions_kept']} instructions kept, {counts['triplets']} triplets "
        f"({counts['requested']} {unit} requested); rejected: {reasons}"
    )


def advice(counts: dict, settings: dict, top: int = 3) -> list[str]:
    """The leading rejection reasons (not `over_quota`: a full quota), each with what to change."""
    reasons = sorted(((n, r) for r, n in counts["rejected"].items() if r != "over_quota"), reverse=True)[:top]
    return [f"{r} {n}: {FIXES[r].format_map(_Missing(settings))}" for n, r in reasons if r in FIXES]


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def poor_run(manifest: dict, data: list[dict]) -> list[str]:
    """Why a run is a poor training set, if it is: far fewer triplets than requested, or one short answer taking
    a large share of them. Each warning names the run's leading rejection reasons with a fix."""
    counts, settings = manifest["counts"], manifest["inputs"].get("settings", {})
    if manifest.get("seeds_only"):
        return []
    warnings = []
    if counts["triplets"] < POOR_SHARE * counts["requested"]:
        warnings.append(
            f"only {counts['triplets']} triplets for the {counts['requested']} "
            f"{counts.get('requested_unit', 'instructions')} requested"
            + "".join(f"\n    {line}" for line in advice(counts, settings))
        )
    labels = label_shares(data)["labels"]
    if labels and labels[0][1] > LABEL_WARN_SHARE * len(data):
        label, n = labels[0][:2]
        warnings.append(
            f"one short answer, {label!r}, is {n} of the {len(data)} triplets: an adapter trained on it learns to "
            "answer it to anything (max_label_share caps it)"
        )
    return warnings


def brainstorming(ins: dict) -> str:
    """The funnel's brainstorming line: its rounds (and engine calls, where a call held several), the prompts
    started, those stopped at the quota, and where reused instructions came from."""
    calls = ins.get("calls")
    return (
        f"{ins['rounds']} rounds"
        + (f" in {calls} engine call{'s' * (calls > 1)}" if calls and calls != ins["rounds"] else "")
        + f", {ins['prompts']} prompts started"
        + (f" ({ins['stopped']} stopped at the quota)" if ins.get("stopped") else "")
        + (f" (instructions reused from {ins['reused_from']})" if "reused_from" in ins else "")
    )


def summary(manifest: dict, run_dir: Path) -> str:
    """The funnel of a finished run on one screen."""
    c, s = manifest["counts"], manifest["stages"]
    if manifest.get("seeds_only"):
        return f"selfspec: run {run_dir}\n  seeds only     {c['triplets']} seed tasks in {DATA} (no generation: the control)"
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(c["rejected"].items(), key=lambda kv: -kv[1])) or "none"
    return "\n".join(
        [
            f"selfspec: run {run_dir}",
            f"  brainstorming  {brainstorming(s['instructions'])}",
            *(
                [
                    f"  instructions   {c['instructions_kept']} kept",
                    f"  triplets       {c['triplets']} of {c['requested']} requested in {DATA}",
                ]
                if c.get("requested_unit") == "triplets"
                else [
                    f"  instructions   {c['instructions_kept']} kept of {c['requested']} requested",
                    f"  triplets       {c['triplets']} in {DATA}",
                ]
            ),
            f"  rejected       {reasons}",
            f"  speed          {manifest['tokens_per_second']} generated tokens/s, {manifest['wall_seconds']} s",
        ]
    )


def _recipe_line(recipe: dict | None) -> str:
    if not recipe:
        return ""
    bundle = f", unpacked from the bundle `{recipe['bundle']}`" if recipe.get("bundle") else ""
    return f"\nMade with the recipe `{Path(recipe['path']).name}` (sha256 `{recipe['sha256'][:16]}…`{bundle})."


def dataset_card(manifest: dict, data: list[dict]) -> str:
    """README.md beside data.jsonl: what the data is, where it came from, how to load it."""
    settings = manifest["inputs"]["settings"]
    types = Counter(len(r["instruction"].split()) // 10 * 10 for r in data)
    lengths = ", ".join(f"{k}-{k + 9} words: {v}" for k, v in sorted(types.items()))
    reasons = "\n".join(f"| {k} | {v} |" for k, v in manifest["counts"]["rejected"].items())
    return f"""---
license: other
task_categories: [text-generation]
tags: [self-specialization, synthetic, selfspec]
---
# Self-specialization data: {settings["domain"]}

{len(data)} (instruction, input, output) triplets that the model `{manifest["model"]}` wrote for itself from
{manifest["counts"]["seeds"]} seed tasks, with selfspec (Kang et al., 2023, *Self-Specialization*). Instructions and inputs were brainstormed with {settings["instruction_demos"]} seed
demonstrations (temperature {settings["temperature"]}, top-p {settings["top_p"]}), responses written with
{settings["response_demos"]} demonstrations (temperature {settings["response_temperature"]})
{f"grounded by {settings.get('retriever', 'bm25')} retrieval over `{Path(settings['corpus']).name}`" if settings.get("corpus") else "without retrieval"},
and filtered (ROUGE-L > {settings["rouge_threshold"]} against kept instructions and seeds, fewer than
{settings["min_words"]} or more than {settings["max_words"]} words, keyword blacklist, bad start, parse and
truncation checks). The text is machine-generated and unreviewed: check it before relying on it.

```python
from datasets import load_dataset
ds = load_dataset("json", data_files="data.jsonl", split="train")
```

Fields: `id`, `instruction`, `input`, `output`{", `docs` (ids of the retrieved documents)" if settings.get("corpus") else ""}{", `messages`" if settings.get("messages") else ""}.{_sources_line(data)}
Run key `{manifest["run_key"]}`; seeds sha256 `{manifest["inputs"]["seeds_sha256"][:16]}…`; backend
`{manifest["backend"]}` ({manifest["prompt_format"]} prompts); versions: {", ".join(f"{k} {v}" for k, v in manifest["versions"].items())}.{_recipe_line(manifest.get("recipe"))}

Instruction lengths: {lengths}.

| rejected because | count |
|---|---|
{reasons}
"""


def _sources_line(data: list[dict]) -> str:
    """The corpus files the responses were grounded on (a folder corpus's chunk ids name them: `file#p3-…`)."""
    cited = cited_sources(data)
    if not cited:
        return ""
    shown = ", ".join(f"`{name}` ({n})" for name, n in cited[:50])
    more = f", and {len(cited) - 50} more" if len(cited) > 50 else ""
    return f"\n\nSources (corpus files the retrieved chunks came from, with the triplets citing each): {shown}{more}."
