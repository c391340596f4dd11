"""B7, issue 32 — where a run's generated tokens go: every token of every brainstorm and answer completion charged
to the fate of the item it made (kept, or its rejection reason), and the ceiling that sets on triplets per 1K
generated tokens: how many a run would keep per 1K tokens if the tokens of a kind of waste had cost nothing.

    .venv/bin/python benchmarks/b7_tokens.py RUN_DIR ... [--result benchmarks/results/b7_tokens.json]

A run folder is read from its raw chunk files (instructions/round-*.jsonl, responses/chunk-*.jsonl, each row with
its token count), data.jsonl and rejected.jsonl. A brainstorm completion's tokens are shared equally by the items
parsed from it (ids `<row>-<k>`); an answer's tokens go to its item. The ceilings are bounds, not forecasts: no
stopping rule spends zero tokens on an item before it knows the item is waste.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from benchlib import ROOT, header, write_result

from selfspec_plugin.fileio import read_jsonl

PARSE_WASTE = ("truncated", "unparseable")
CAPS = (128, 192, 256)  # lower brainstorm caps to weigh: tokens saved against kept items lost
# Stop strings a brainstorm could carry, as patterns over its completion: what each would save on the items that
# ran to the cap, and how many answered items (kept or rejected by a response filter) it would cut.
STOPS = {
    "a second Input field": r"Input:.*?\n[ \t]*\d*\.?[ \t]*Input:",
    "a blank line": r"\n[ \t]*\n",
}  # brainstorm items that ran to the cap or lost their format
TARGET = 6.0  # issue 32: kept triplets per 1K generated tokens on the demo recipe


def fates(run_dir: Path) -> dict[str, str]:
    """Item id -> "kept" or its rejection reason (without its detail: `copied`, not `copied:input`)."""
    out = {r["id"]: r["rejected"].split(":")[0] for r in read_jsonl(run_dir / "rejected.jsonl")}
    out.update({r["id"]: "kept" for r in read_jsonl(run_dir / "data.jsonl")})
    return out


def account(run_dir: Path) -> dict:
    """Brainstorm and answer tokens per fate, and the triplets kept."""
    fate = fates(run_dir)
    items_of: dict[str, list[str]] = defaultdict(list)
    for item in fate:
        items_of[item.rsplit("-", 1)[0]].append(item)
    brainstorm, answer, items = Counter(), Counter(), Counter(fate.values())
    completions = [row for path in sorted((run_dir / "instructions").glob("round-*.jsonl")) for row in read_jsonl(path)]
    for row in completions:
        if row["finish_reason"] == "abort":  # stopped at the quota (stop_at_quota): no item, its tokens spent
            brainstorm["stopped at the quota"] += row["tokens"]
            continue
        made = items_of.get(row["id"]) or [None]
        for item in made:
            brainstorm[fate.get(item, "nothing parsed")] += row["tokens"] / len(made)
    answered = set()
    for path in sorted((run_dir / "responses").glob("chunk-*.jsonl")):
        for row in read_jsonl(path):
            answer[fate[row["id"]]] += row["tokens"]
            answered.add(row["id"].rsplit("-", 1)[0])
    return {
        "triplets": items["kept"],
        "items": dict(items),
        "brainstorm": dict(brainstorm),
        "answer": dict(answer),
        "what_if": what_if(completions, {i.rsplit("-", 1)[0] for i, f in fate.items() if f == "kept"}, answered),
    }


def what_if(completions: list[dict], kept: set[str], answered: set[str]) -> dict:
    """Brainstorm tokens a lower cap or a stop string would have saved, and what it would have cut that was kept
    (a cap: completions longer than it) or answered (a stop string: completions it matches)."""
    out = {}
    for cap in CAPS:
        out[f"cap {cap}"] = {
            "tokens_saved": sum(max(0, r["tokens"] - cap) for r in completions),
            "kept_cut": sum(r["tokens"] > cap for r in completions if r["id"] in kept),
        }
    for name, pattern in STOPS.items():
        found = [(r, re.search(pattern, r["text"], re.S)) for r in completions]
        out[name] = {  # tokens after the match, pro rata by characters, on completions that ran to the cap
            "tokens_saved": round(
                sum(
                    r["tokens"] * (1 - m.end() / len(r["text"]))
                    for r, m in found
                    if m and r["finish_reason"] == "length"
                )
            ),
            "answered_cut": sum(1 for r, m in found if m and r["id"] in answered),
        }
    return out


def summarize(accounts: list[dict]) -> dict:
    """Pool runs: tokens per fate, triplets per 1K tokens, and the ceilings with each kind of waste free."""
    pooled: dict[str, Counter] = {k: Counter() for k in ("items", "brainstorm", "answer")}
    what: dict[str, Counter] = defaultdict(Counter)
    for a in accounts:
        for k in pooled:
            pooled[k].update(a[k])
        for name, counts in a["what_if"].items():
            what[name].update(counts)
    triplets = sum(a["triplets"] for a in accounts)
    spent = {f: pooled["brainstorm"][f] + pooled["answer"][f] for f in pooled["brainstorm"] | pooled["answer"]}
    total = sum(spent.values())
    waste = {
        "parse waste (truncated, unparseable)": sum(spent.get(f, 0) for f in PARSE_WASTE),
        "every item rejected before its answer": sum(
            spent[f] for f in spent if f != "kept" and not pooled["answer"][f]
        ),
        "every rejected item": total - spent.get("kept", 0),
    }

    def per_1k(tokens: float) -> float:
        return round(1000 * triplets / tokens, 2)

    return {
        "runs": len(accounts),
        "triplets": triplets,
        "generated_tokens": round(total),
        "triplets_per_1k_tokens": per_1k(total),
        "fates": {
            f: {
                "items": pooled["items"].get(f, 0),
                "brainstorm_tokens": round(pooled["brainstorm"].get(f, 0)),
                "answer_tokens": pooled["answer"].get(f, 0),
                "share": round(t / total, 3),
            }
            for f, t in sorted(spent.items(), key=lambda kv: -kv[1])
        },
        "brainstorm_tokens": round(sum(pooled["brainstorm"].values())),
        "what_if": {name: dict(counts) for name, counts in what.items()},
        "ceiling_if_free": {name: per_1k(total - tokens) for name, tokens in waste.items()},
        "waste_tokens_per_triplet": round((total - spent.get("kept", 0)) / triplets, 1),
        "waste_per_triplet_allowed_by_target": round(1000 / TARGET - spent.get("kept", 0) / triplets, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders, pooled")
    ap.add_argument("--label", default="", help="a name for the pooled runs in the result file")
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "b7_tokens.json"))
    args = ap.parse_args()
    path = Path(args.result)
    result = json.loads(path.read_text()) if path.is_file() else {}
    result.update(header("B7 tokens: where a run's generated tokens go (issue 32)", f">= {TARGET} per 1K", ()))
    label = args.label or ", ".join(str(r) for r in args.runs)
    summary = summarize([account(r) for r in args.runs])
    result.setdefault("pools", {})[label] = {
        "command": result["command"],
        "run_dirs": [str(r) for r in args.runs],
        **summary,
    }
    write_result(path, result)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
