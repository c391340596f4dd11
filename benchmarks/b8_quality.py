"""B8 — data quality: what the quality gates (issue 31) drop from generated data, with every drop and its reason.

    .venv/bin/python benchmarks/b8_quality.py NAME=DATA.jsonl [NAME=DATA.jsonl ...] [--seeds seeds/biomed.jsonl]

For each data file (a run's data.jsonl: triplets that passed the filters of the revision that made them) it
reports the two problems the gates are for, before and after the default gates: bare-label answers to tasks
that ask for no label (their share of the triplets) and verbatim copies (answers of five or more words found
word for word in their instruction or input); then what the default response gates drop, by reason, and what
the opt-in gates would drop at the settings named below. A file made by a revision with the gates shows them
already applied. The drops are written to benchmarks/results/b8/NAME.rejected.jsonl, each with its reason.
Results: benchmarks/results/b8_quality.json.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from benchlib import ROOT, header, write_result

from selfspec_plugin import fileio, filters
from selfspec_plugin.config import SelfSpecConfig
from selfspec_plugin.filters import seed_texts
from selfspec_plugin.pipeline import filter_records
from selfspec_plugin.seeds import load_seeds

RESULT = ROOT / "benchmarks" / "results" / "b8_quality.json"
OPT_IN = {"max_label_share": 0.1, "min_domain_overlap": 0.2}  # the settings the opt-in columns use


def problems(rows: list[dict]) -> dict:
    unasked = [r for r in rows if filters.unasked_label_check(r)]
    verbatim = [r for r in rows if filters.verbatim_check()(r)]
    bare = [r for r in rows if filters.bare_label(r["output"])]
    return {
        "triplets": len(rows),
        "bare_labels": len(bare),
        "unasked_labels": len(unasked),
        "unasked_label_share": round(len(unasked) / len(rows), 4) if rows else 0.0,
        "verbatim_copies": len(verbatim),
    }


def measure(name: str, path: Path, seeds: list[dict]) -> dict:
    rows = [{k: r[k] for k in ("id", "instruction", "input", "output")} for r in fileio.read_jsonl(path)]
    settings = {**SelfSpecConfig(seeds="-", **OPT_IN).model_dump(), "existing": [], "reference": seed_texts(seeds)}
    kept, rejected = filter_records(rows, settings, ["verbatim", "unasked_label"])
    _, opt_in = filter_records(kept, settings, ["off_domain", "label_share"])
    out = ROOT / "benchmarks" / "results" / "b8" / f"{name}.rejected.jsonl"
    fileio.write_jsonl(out, rejected + opt_in)
    reasons = Counter(r["rejected"].split(":")[0] for r in rejected)
    return {
        "data": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "before": problems(rows),
        "after_default_gates": problems(kept),
        "dropped_by_default_gates": dict(reasons.most_common()),
        "dropped_labels": dict(Counter(r["rejected"] for r in rejected if r["rejected"].startswith("unasked"))),
        "opt_in_would_drop": dict(Counter(r["rejected"].split(":")[0] for r in opt_in).most_common()),
        "opt_in_settings": OPT_IN,
        "rejected_file": str(out.relative_to(ROOT)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+", metavar="NAME=DATA.jsonl")
    ap.add_argument("--seeds", default=str(ROOT / "seeds" / "biomed.jsonl"))
    args = ap.parse_args()
    result = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    result.update(
        header(
            "B8 data quality: unasked labels and verbatim copies before and after the gates",
            "bare-label answers to tasks that ask for no label <= 2 % of triplets; verbatim copies 0",
            ("selfspec",),
        )
    )
    seeds = load_seeds(args.seeds)
    for spec in args.data:
        name, path = spec.split("=", 1)
        result.setdefault("files", {})[name] = measure(name, Path(path).resolve(), seeds)
    write_result(str(RESULT), result)
    print(json.dumps(result["files"], indent=1))


if __name__ == "__main__":
    main()
