"""Render benchmarks/results/*.json into the tables of docs/benchmarks.md (between the `results` markers).

.venv/bin/python benchmarks/summary.py        (run_all.sh calls it at the end)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- results:start (benchmarks/summary.py writes this part) -->", "<!-- results:end -->"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def header(r: dict) -> list[str]:
    m = r["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return [
        f"### {r['benchmark']}",
        "",
        f"Goal: {r['goal']}. Run {r['date']} on {m['cpu']} × {m['cpu_count']} cores, Python {m['python']}; "
        f"{versions}. Command: `{r['command']}`.",
        "",
    ]


def table(r: dict, columns: str) -> list[str]:
    """The benchmark's header, then a markdown table's column row (`columns`: "a | b | c") and separator."""
    return header(r) + [f"| {columns} |", "|" + "---|" * (columns.count("|") + 1)]


def b1(r: dict) -> list[str]:
    lines = table(
        r,
        "model | requests (engine calls) | pipeline tok/s | bare, same calls | bare, one call per stage | "
        "bare, one call | **pipeline / per stage** | pipeline wall: engine / backend / rest (s)",
    )
    for m in r["models"]:
        p = m["pipeline"]
        lines.append(
            f"| {m['model']} | {m['requests']} ({m['engine_calls']}) | {p['tokens_per_s']} | "
            f"{m['bare_same_calls']['tokens_per_s']} | {m['bare_per_stage']['tokens_per_s']} | "
            f"{m['bare_one_call']['tokens_per_s']} | **{m['ratio_vs_per_stage']}×** | "
            f"{p['wall_s']}: {p['engine_s']} / {p['backend_s']} / {p['pipeline_s']} |"
        )
    lines += [
        "",
        f"Medians of {r['repeats']} repetitions; pipeline vs the same calls replayed bare: "
        + ", ".join(f"{m['model']} {m['ratio_vs_same_calls']}×" for m in r["models"])
        + ".",
    ]
    return lines


def b2(r: dict) -> list[str]:
    lines = table(r, "model | stage | prompts | vLLM tok/s | transformers tok/s | **vLLM / transformers**")
    for m in r["models"]:
        for stage, s in m["stages"].items():
            lines.append(
                f"| {m['model']} | {stage} (T={s['temperature']}, ≤{s['max_tokens']} tokens) | {s['prompts']} | "
                f"{s['vllm']['tokens_per_s']} | {s['transformers']['tokens_per_s']} | **{s['ratio']}×** |"
            )
    lines += [
        "",
        f"Medians of {r['repeats']} repetitions; transformers batch size "
        f"{r['models'][0]['transformers_batch_size']}; both engines in the dtype the model's preset names "
        "(b1_overhead.PRESETS), the transformers backend in fp32 where it names none.",
    ]
    return lines


def b3(r: dict) -> list[str]:
    lines = table(r, "N candidates | kept | ours (s) | reference (s) | **speed-up** | kept sets identical")
    for row in r["rows"]:
        ref = f"{row['reference_seconds']}" + (
            f" (extrapolated from the first {row['reference_measured_n']})" if row["extrapolated"] else ""
        )
        same = f"{row['identical']}" + (
            f" (first {row['compared_first']}: {row['kept_reference_in_compared']} kept by both)"
            if row["extrapolated"]
            else ""
        )
        lines.append(
            f"| {row['n']} | {row['kept_ours']} | {row['ours_seconds']} | {ref} | **{row['speedup']}×** | {same} |"
        )
    growth = "; ".join(
        f"{g['from']}→{g['to']}: ours N^{o['exponent']}, reference N^{g['exponent']}"
        for g, o in zip(r["growth_reference"], r["growth_ours"])
    )
    c0, c1 = r["rows"][-1]["reference_cost_fit_c0_c1"] or (None, None)
    lines += ["", f"Medians of {r['repeats']} repetitions, {r['workers']} reference workers. Growth: {growth}."]
    if c0 is not None:
        lines.append(
            f"Reference cost per candidate fitted on the measured prefix: {c0 * 1000:.1f} ms + "
            f"{c1 * 1e6:.1f} µs × pool size."
        )
    return lines


def b4(r: dict) -> list[str]:
    extra = f" (extrapolated from {r['reference_queries']} queries)" if r["extrapolated"] else ""
    return header(r) + [
        f"| {r['docs']:,} docs, {r['queries']:,} queries, top-{r['k']} | index (s) | queries (s) | total (s) |",
        "|---|---|---|---|",
        f"| ours: bm25s | {r['ours_index_s']} | {r['ours_query_s']} | {r['ours_total_s']} |",
        f"| rank_bm25 | {r['reference_index_s']} | {r['reference_query_s']}{extra} | {r['reference_total_s']} |",
        f"| **speed-up** | {r['speedup_index']}× | **{r['speedup_query']}×** | **{r['speedup_total']}×** |",
        "",
        f"Top-{r['k']} agreement on {r['reference_queries']} queries: exact {r['agreement_exact']:.3f}, "
        f"up to ties {r['agreement_up_to_ties']:.3f}. Medians of {r['repeats']} repetitions.",
    ]


def b9(r: dict) -> list[str]:
    t = r["abstract_tokens"]
    rows = [
        f"| {x['retriever']} | {x['unit']} | {x.get('docs', 1000):,} | {x['recall@1']:.3f} | **{x['recall@3']:.3f}** | "
        f"{x.get('read_and_chunk_s', '')} | {x.get('index_s', x.get('embed_docs_s', ''))} | {x['query_s']} |"
        for x in r["runs"]
    ]
    return header(r) + [
        "| retriever | what is indexed | documents | recall@1 | recall@3 | read + chunk (s) | index (s) | 1,000 queries (s) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"{r['corpus']}; abstracts {t['median']} tokens median, {t['p90']} p90, {t['max']} max ({r['tokenizer']}). "
        f"Dense: {r['dense']}. Recall@k: the question's own abstract among the top-k results (for chunks: one of the "
        "top-k chunks comes from it). One run; the dense index time is embedding every document.",
    ]


def b5(r: dict) -> list[str]:
    return header(r) + [
        f"| `axolotl train`, {r['model']} model, QLoRA, max_steps 1 | time to first step (s) | to exit (s) |",
        "|---|---|---|",
        f"| plain Axolotl, `datasets:` = the generated jsonl | {r['plain']['first_step_s']} | {r['plain']['wall_s']} |",
        f"| with the plugin, cached run | {r['plugin']['first_step_s']} | {r['plugin']['wall_s']} |",
        "",
        f"**Difference in time to first step: {r['difference']:+.1%}** (medians of {r['repeats']} runs each, "
        f"alternating; {r['triplets']} triplets).",
    ]


def b6(r: dict) -> list[str]:
    t, h = r["throughput_1b"], r["handoff"]
    return [
        f"### B6 GPU generation (lent {r['device']}, {r['date']})",
        "",
        f"torch {r['torch']}, transformers {r['transformers']}; no vLLM on that machine. Command: "
        "`benchmarks/gpu_check.sh` (see docs/gpu.md).",
        "",
        "| what | prompts | tokens | seconds | tok/s | 5K estimate |",
        "|---|---|---|---|---|---|",
        f"| responses, greedy, {t['shape']} shape (random weights), transformers batch 64 | "
        f"{t['responses_greedy_batched']['prompts']} | {t['responses_greedy_batched']['tokens']} | "
        f"{t['responses_greedy_batched']['seconds']} | {t['responses_greedy_batched']['tokens_per_s']} | "
        f"{t['estimate_5k_minutes']['responses']} min |",
        f"| brainstorming, seeded sampling, same | {t['brainstorm_sampled_batched']['prompts']} | "
        f"{t['brainstorm_sampled_batched']['tokens']} | {t['brainstorm_sampled_batched']['seconds']} | "
        f"{t['brainstorm_sampled_batched']['tokens_per_s']} | {t['estimate_5k_minutes']['brainstorm']} min |",
        f"| the pipeline end to end (tiny model, hand-off child) | {h['stages']['instructions']['prompts']} + "
        f"{h['counts']['instructions_kept']} | {h['stages']['instructions']['tokens'] + h['stages']['responses']['tokens']} | "
        f"{h['wall_s']} | {h['tokens_per_second']} | – |",
    ]


B7_COLUMNS = (
    ("prompts", "brainstorm prompts"),
    ("parsed_items", "parsed items"),
    ("parse_waste", "parse waste"),
    ("instructions_kept", "kept instr."),
    ("triplets", "triplets"),
    ("generated_tokens", "generated tokens"),
    ("cpu_s", "CPU s"),
    ("wall_s", "wall s"),
    ("triplets_per_cpu_min", "**triplets / CPU-min**"),
    ("triplets_per_1k_tokens", "triplets / 1K tokens"),
)
B7_RECIPE = (
    "prompts_per_round",
    "instruction_samples",
    "instruction_max_tokens",
    "response_samples",
    "response_max_tokens",
)


def b7(r: dict) -> list[str]:
    """One row per leg (a revision on a recipe, and a run seed when there are several), then the ratios."""
    legs = r["legs"]
    order = sorted(legs, key=lambda k: (k.split(":")[1].split("@")[0] != "demo", k.split(":")[1], k[0] != "b"))
    lines = table(r, "leg | " + " | ".join(label for _, label in B7_COLUMNS) + " | rejected")
    for name in order:
        leg = legs[name]
        cells = [f"{leg[k]:.0%}" if k == "parse_waste" else str(leg[k]) for k, _ in B7_COLUMNS]
        rejected = ", ".join(f"{k} {v}" for k, v in leg["rejected"].items())
        lines.append(f"| {name} ({leg['rev']}) | " + " | ".join(cells) + f" | {rejected} |")
    lines.append("")
    recipes = {}  # one line per revision and recipe: a leg that raises the recipe (biomed1300) gets its own
    for leg in legs.values():
        settings = leg["settings"]
        recipe = ", ".join(f"{k} {settings[k]}" for k in B7_RECIPE if settings.get(k) is not None)
        recipes.setdefault((leg["rev"], recipe), []).append(leg["leg"].split("@")[0])
    for (rev, recipe), names in sorted(recipes.items(), reverse=True):
        which = f" ({', '.join(dict.fromkeys(names))})" if sum(r == rev for r, _ in recipes) > 1 else ""
        lines.append(f"Recipe at {rev}{which}: {recipe}.  ")
    for label, ratio in r.get("ratios", {}).items():
        before, after = ratio["parse_waste"]
        lines += [
            "",
            f"**{label}: after / before = {ratio['triplets_per_cpu_min']}× triplets per CPU-minute, "
            f"{ratio['triplets_per_1k_tokens']}× per 1K generated tokens; parse waste {before:.0%} → {after:.0%}.**",
        ]
    return lines


def b8(r: dict) -> list[str]:
    """One row per data file: the two problems before and after the default gates, what the gates dropped."""
    lines = table(
        r,
        "data | triplets | unasked labels | verbatim copies | after the gates: triplets | unasked labels | "
        "verbatim copies | dropped | opt-in would drop",
    )
    for name, f in r["files"].items():
        b, a = f["before"], f["after_default_gates"]
        dropped = ", ".join(f"{k} {v}" for k, v in f["dropped_by_default_gates"].items()) or "none"
        opt_in = ", ".join(f"{k} {v}" for k, v in f["opt_in_would_drop"].items()) or "none"
        settings = ", ".join(f"{k} {v}" for k, v in f["opt_in_settings"].items())
        lines.append(
            f"| {name} | {b['triplets']} | {b['unasked_labels']} ({b['unasked_label_share']:.1%}) | "
            f"{b['verbatim_copies']} | {a['triplets']} | {a['unasked_labels']} ({a['unasked_label_share']:.1%}) | "
            f"{a['verbatim_copies']} | {dropped} | {opt_in} ({settings}) |"
        )
    return lines


def render() -> str:
    parts = []
    for name, fn in (
        ("b1_overhead", b1),
        ("b2_engines", b2),
        ("b3_novelty", b3),
        ("b4_retrieval", b4),
        ("b5_train_overhead", b5),
        ("b7_yield", b7),
        ("b7_yield_gates", b7),
        ("b7_yield_loops", b7),
        ("b7_yield_issue31", b7),
        ("b7_yield_quota", b7),
        ("b7_yield_stream", b7),
        ("b7_yield_refill", b7),
        ("b8_quality", b8),
        ("b9_corpus_recall", b9),
    ):
        r = load(name)
        parts += (fn(r) if r else [f"### {name}", "", "(not run yet)"]) + [""]
    gpu = sorted(RESULTS.glob("gpu_check-*.json"))
    if gpu:
        parts += b6(json.loads(gpu[-1].read_text())) + [""]
    return "\n".join(parts).rstrip() + "\n"


def main() -> int:
    text = DOC.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), flags=re.S)
    if not pattern.search(text):
        sys.exit(f"{DOC}: no {START} ... {END} block")
    DOC.write_text(pattern.sub(lambda _: f"{START}\n\n{render()}\n{END}", text))
    print(f"written: {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
