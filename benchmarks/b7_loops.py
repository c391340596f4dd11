"""B7, issue 32 — the loop rule (selfspec_plugin/loops.py) measured offline on real SmolLM2-135M generations: which
kept outputs it would have cut (a false positive costs a triplet), which truncated ones it catches, and at which
token, for the default thresholds and a sweep around them.

    .venv/bin/python benchmarks/b7_loops.py [--runs DIR ...] [--result benchmarks/results/b7_loops.json]

Texts are re-tokenized with the generator's tokenizer (models/smollm2-135m-instruct), which is how the engine's
own token ids would read them in all but rare merges. Sources, each text counted once:
- kept answers: docs/results/data.jsonl (1,035 triplets of the 7f3677d run, cap 128) and benchmarks/results/b7/*/
  data.jsonl (cap 64); kept brainstorm items: the instructions.jsonl beside them (instruction and input, as the
  model wrote them: "N. Instruction: ...\\nN. Input:\\n...");
- rejected answers and brainstorm items of benchmarks/results/b7/*/rejected.jsonl: `truncated_response` (answers
  decoded to the cap), `truncated` (the raw text of the brainstorm item that ran to the cap), and every other
  answer that ended on its own (rejected for another reason: cutting it changes nothing kept, but is counted);
- `--runs`: run folders of fresh runs (e.g. .cache/b7/runs/*/runs/*): their raw chunk files hold every whole
  completion, brainstorming rounds included, so a cut is placed exactly where the backend would place it.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
from pathlib import Path

from benchlib import ROOT, header, write_result

from selfspec_plugin.loops import MAX_PERIOD, MIN_COPIES, MIN_RUN, first_loop, loop_run

SWEEP = [
    {"max_period": p, "min_run": r, "min_copies": c} for p in (32, 64) for r in (12, 16, 24, 32) for c in (2, 3, 4, 5)
]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def item_text(item: dict) -> str:
    return f"Instruction: {item['instruction']}\nInput:\n{item.get('input', '')}"


def collect(runs: list[str]) -> dict[str, dict[str, str]]:
    """group -> {text: where} (a text seen in several files counts once)."""
    groups: dict[str, dict[str, str]] = {
        k: {}
        for k in (
            "kept_answers",
            "kept_items",
            "other_stopped_answers",
            "truncated_response",
            "truncated_items",
            "run_completions_answers_stop",
            "run_completions_answers_length",
            "run_completions_brainstorm",
        )
    }
    kept_files = [ROOT / "docs/results/data.jsonl", *sorted((ROOT / "benchmarks/results/b7").glob("*/data.jsonl"))]
    for path in kept_files:
        for r in rows(path):
            groups["kept_answers"].setdefault(r["output"], str(path.relative_to(ROOT)))
        instructions = path.with_name("instructions.jsonl")
        for r in rows(instructions) if instructions.is_file() else []:
            groups["kept_items"].setdefault(item_text(r), str(instructions.relative_to(ROOT)))
    for path in sorted((ROOT / "benchmarks/results/b7").glob("*/rejected.jsonl")):
        where = str(path.relative_to(ROOT))
        for r in rows(path):
            reason = r["rejected"].split(":")[0]
            if r.get("stage") == "response" and "output" in r:
                group = "truncated_response" if reason == "truncated_response" else "other_stopped_answers"
                if reason != "prompt_too_long":
                    groups[group].setdefault(r["output"], where)
            elif reason == "truncated" and r.get("raw"):
                groups["truncated_items"].setdefault(r["raw"], where)
    for pattern in runs:
        for run in sorted(glob.glob(pattern)):
            for chunk in sorted(Path(run).glob("responses/*.jsonl")):
                for r in rows(chunk):
                    group = "run_completions_answers_" + ("length" if r["finish_reason"] == "length" else "stop")
                    groups[group].setdefault(r["text"], str(chunk))
            for chunk in sorted(Path(run).glob("instructions/*.jsonl")):
                for r in rows(chunk):
                    groups["run_completions_brainstorm"].setdefault(r["text"], str(chunk))
    return groups


def measure(tokenized: dict[str, list[tuple[str, list[int]]]], rule: dict, examples: int = 0) -> dict:
    out = {}
    for group, items in tokenized.items():
        cuts = []
        for text, ids in items:
            end = first_loop(ids, **rule)
            if end is not None:
                cuts.append((end, len(ids), text, loop_run(ids[:end], rule["max_period"])))
        entry = {
            "texts": len(items),
            "cut": len(cuts),
            "tokens": sum(len(ids) for _, ids in items),
            "tokens_after_cut": sum(n - end for end, n, _, _ in cuts),
        }
        if cuts:
            entry["cut_at_token_median"] = statistics.median(end for end, _, _, _ in cuts)
            entry["period_median"] = statistics.median(run[0] for _, _, _, run in cuts)
        if examples and cuts:
            entry["examples"] = [
                {"cut_at": end, "of": n, "period": run[0], "text": text[:400]}
                for end, n, text, run in sorted(cuts, key=lambda c: c[0])[:examples]
            ]
        out[group] = entry
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", action="append", default=[], help="run folders (globs) with raw chunk files")
    ap.add_argument("--tokenizer", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "b7_loops.json"))
    args = ap.parse_args()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    groups = collect(args.runs)
    tokenized = {
        g: [(t, tok(t, add_special_tokens=False)["input_ids"]) for t in texts] for g, texts in groups.items() if texts
    }
    default = {"max_period": MAX_PERIOD, "min_run": MIN_RUN, "min_copies": MIN_COPIES}
    result = header(
        "B7 loops: what the loop rule would cut",
        "no kept answer or brainstorm item cut; most answers decoded to the cap caught early",
        ("transformers",),
    )
    result.update(
        {
            "tokenizer": str(Path(args.tokenizer).relative_to(ROOT)) if args.tokenizer.startswith(str(ROOT)) else "",
            "runs": args.runs,
            "rule": default,
            "default": measure(tokenized, default, examples=5),
            "sweep": [
                {
                    "rule": rule,
                    **{
                        g: {k: v for k, v in e.items() if k in ("cut", "texts", "tokens_after_cut")}
                        for g, e in measure(tokenized, rule).items()
                    },
                }
                for rule in SWEEP
            ],
        }
    )
    write_result(args.result, result)
    summary = {g: {k: v for k, v in e.items() if k != "examples"} for g, e in result["default"].items()}
    print(json.dumps(summary, indent=1))
    for s in result["sweep"]:
        print(
            s["rule"],
            " ".join(f"{g}={e['cut']}/{e['texts']}" for g, e in s.items() if g != "rule"),
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
