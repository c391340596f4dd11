"""Human-readable views of a run: the one-screen funnel, `selfspec inspect`, and the dataset card."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from . import store


def summary(manifest: dict, run_dir: Path) -> str:
    """The funnel of a finished run on one screen."""
    c, s = manifest["counts"], manifest["stages"]
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(c["rejected"].items(), key=lambda kv: -kv[1])) or "none"
    return "\n".join([
        f"selfspec: run {run_dir}",
        f"  brainstorming  {s['instructions']['rounds']} rounds, {s['instructions']['prompts']} prompts",
        f"  instructions   {c['instructions_kept']} kept of {c['requested']} requested",
        f"  triplets       {c['triplets']} in {store.DATA}",
        f"  rejected       {reasons}",
        f"  speed          {manifest['tokens_per_second']} generated tokens/s, {manifest['wall_seconds']} s",
    ])


def inspect(run_dir: Path, samples: int = 5, seed: int = 0) -> str:
    """Funnel, rejection reasons with an example each, and random kept triplets."""
    run_dir = Path(run_dir)
    manifest = store.read_json(run_dir / store.MANIFEST)
    data = store.read_jsonl(run_dir / store.DATA)
    rejected = store.read_jsonl(run_dir / "rejected.jsonl")
    lines = [summary(manifest, run_dir), "", "rejections (reason: count, example)"]
    by_reason: dict[str, list[dict]] = {}
    for rec in rejected:
        by_reason.setdefault(rec["rejected"].split(":")[0], []).append(rec)
    for reason, recs in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        example = recs[0].get("instruction") or recs[0].get("raw") or ""
        lines.append(f"  {reason:20s} {len(recs):6d}  {_short(example)}")
    lines += ["", f"{min(samples, len(data))} random kept triplets"]
    for row in random.Random(seed).sample(data, min(samples, len(data))):
        lines += [f"  [{row['id']}] instruction: {_short(row['instruction'], 200)}",
                  f"      input: {_short(row['input'], 200) or '(none)'}",
                  f"      output: {_short(row['output'], 200)}"]
    return "\n".join(lines)


def _short(text: str, width: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


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
# Self-specialization data: {settings['domain']}

{len(data)} (instruction, input, output) triplets that the model `{manifest['model']}` wrote for itself from
{manifest['counts']['seeds']} seed tasks, with selfspec (Kang et al., 2023, *Self-Specialization*). Instructions and inputs were brainstormed with {settings['instruction_demos']} seed
demonstrations (temperature {settings['temperature']}, top-p {settings['top_p']}), responses written with
{settings['response_demos']} demonstrations (temperature {settings['response_temperature']})
{'grounded by BM25 over `' + settings['corpus'] + '`' if settings.get('corpus') else 'without retrieval'},
and filtered (ROUGE-L > {settings['rouge_threshold']} against kept instructions and seeds, fewer than
{settings['min_words']} or more than {settings['max_words']} words, keyword blacklist, bad start, parse and
truncation checks). The text is machine-generated and unreviewed: check it before relying on it.

```python
from datasets import load_dataset
ds = load_dataset("json", data_files="data.jsonl", split="train")
```

Fields: `id`, `instruction`, `input`, `output`{', `docs` (ids of the retrieved documents)' if settings.get('corpus') else ''}{', `messages`' if settings.get('messages') else ''}.
Run key `{manifest['run_key']}`; seeds sha256 `{manifest['inputs']['seeds_sha256'][:16]}…`; backend
`{manifest['backend']}` ({manifest['prompt_format']} prompts); versions: {', '.join(f'{k} {v}' for k, v in manifest['versions'].items())}.

Instruction lengths: {lengths}.

| rejected because | count |
|---|---|
{reasons}
"""
