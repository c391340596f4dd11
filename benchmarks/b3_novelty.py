"""B3: our exact ROUGE-L novelty filter vs the Self-Instruct/Stanford Alpaca reference algorithm.

Both filters read the same stream of candidate instructions in the same order, against a pool that starts
with the seed instructions (`seeds/biomed.jsonl`), and drop a candidate whose ROUGE-L F with any pooled
instruction is > 0.7 (kept candidates join the pool).

- ours: `selfspec_plugin.filters.novelty_check` (the pipeline's check: `NoveltyPool`'s inverted index and
  overlap bound, then the exact LCS).
- reference: Alpaca's `generate_instruction.py` loop: `rouge_scorer.RougeScorer(["rougeL"],
  use_stemmer=False)` tokens and `Pool.map(partial(rouge_scorer._score_lcs, new_tokens), pool_tokens)` for
  every candidate, with `--workers` processes. Alpaca opens a new `Pool` per candidate; here one pool is
  opened before the clock starts, which only makes the reference faster.

The candidates are synthetic but realistic: clauses of the seed instructions recombined, domain terms
swapped, openers and format constraints added, and ~15% near-duplicates of earlier candidates
(deterministic with `--seed`). Size N uses the first N candidates of one stream.

The reference is O(N^2); it runs fully up to `--reference-max` candidates. Above that it runs on that
prefix, a cost per candidate `c0 + c1 * pool_size` is fitted to its measured per-candidate times, and the
rest of the stream is predicted with the pool sizes that our (prefix-verified) filter produces:
`"extrapolated": true` in the JSON, and `identical` then compares the prefix only.

Goal (issue 7): identical kept set, >= 100x faster at 20K; report how time grows with N.
Exits 1 if a kept set differs. Command, from the repo root:

    .venv/bin/python benchmarks/b3_novelty.py --sizes 5000,20000,50000 --reference-max 2000 --repeats 3
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import statistics
import sys
import time
from functools import partial
from multiprocessing import Pool

import numpy as np
from benchlib import header, write_result
from rouge_score import rouge_scorer

from selfspec_plugin.filters import novelty_check
from selfspec_plugin.seeds import load_seeds

THRESHOLD = 0.7
DUP_RATE = 0.15
SWAPS = [  # interchangeable domain terms: a word of a group may be replaced by another of the same group
    "biomedical clinical hematology immunology nutrition neuroscience oncology pharmacology cardiology genetics "
    "microbiology pathology virology epidemiology endocrinology nephrology dermatology toxicology",
    "gene protein enzyme drug disease pathogen antibody receptor mutation biomarker symptom chemical organism "
    "variant pathway hormone",
    "abstract passage sentence text excerpt report note summary paragraph post article record",
    "patient clinician author writer physician nurse pharmacist researcher",
    "diseases genes drugs cells organisms proteins chemicals symptoms tissues enzymes mutations",
]
OPENERS = [
    "Please",
    "Carefully",
    "As a clinician,",
    "For a medical student,",
    "Briefly,",
    "In the context of {field} research,",
    "Using your knowledge of {field},",
    "Without external sources,",
]
ENDINGS = [
    "Answer with a {fmt}.",
    "Keep the answer under {n} words.",
    "Do not add any explanation.",
    "Explain your reasoning first.",
    "Cite the relevant {doc} if possible.",
    "Use standard {field} terminology.",
    "If the {doc} is ambiguous, say so.",
    "Give the answer as a {fmt}.",
]
FORMATS = [
    "comma-separated list",
    "single word",
    "number",
    "yes or no",
    "true or false",
    "short sentence",
    "bulleted list",
    "JSON object",
    "table",
]
FILLERS = ["the", "all", "only", "please", "each", "given", "following", "exactly", "briefly"]


# -- candidates --------------------------------------------------------------------------------------------


def swap_terms(words: list[str], rng: random.Random, p: float) -> list[str]:
    groups = [g.split() for g in SWAPS]
    out = []
    for w in words:
        core = w.strip(".,;:?!'\"()").lower()
        group = next((g for g in groups if core in g), None)
        out.append(w.lower().replace(core, rng.choice(group)) if group and rng.random() < p else w)
    return out


def fill(template: str, rng: random.Random) -> str:
    return template.format(
        field=rng.choice(SWAPS[0].split()),
        doc=rng.choice(SWAPS[2].split()),
        fmt=rng.choice(FORMATS),
        n=rng.choice([10, 20, 30, 50]),
    )


def new_variant(clauses: list[list[str]], rng: random.Random) -> str:
    """The first clause of one seed, maybe a clause of another, terms swapped, maybe an opener and an ending."""
    text = rng.choice(clauses)[0].rstrip(".,;?")
    if rng.random() < 0.6:
        tail = rng.choice(rng.choice(clauses)).rstrip(".,;?")
        text += rng.choice([", and ", "; ", " and "]) + tail[:1].lower() + tail[1:]
    words = swap_terms(text.split(), rng, 0.35)
    if rng.random() < 0.4:
        words = fill(rng.choice(OPENERS), rng).split() + [words[0][:1].lower() + words[0][1:]] + words[1:]
    text = " ".join(words) + "."
    if rng.random() < 0.5:
        text += " " + fill(rng.choice(ENDINGS), rng)
    return text[:1].upper() + text[1:]


def near_duplicate(text: str, rng: random.Random) -> str:
    """One or two small edits: a swapped term, a dropped word, an inserted filler word, or a changed case."""
    words = text.split()
    for _ in range(rng.randint(1, 2)):
        edit, i = rng.randrange(4), rng.randrange(len(words))
        if edit == 0:
            words = swap_terms(words, rng, 0.5)
        elif edit == 1 and len(words) > 4:
            del words[i]
        elif edit == 2:
            words.insert(i, rng.choice(FILLERS))
        else:
            words[i] = words[i].upper() if words[i].islower() else words[i].lower()
    return " ".join(words)


def make_candidates(seed_instructions: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    clauses = [re.split(r"(?<=[.?;,])\s+", s) for s in seed_instructions]
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < DUP_RATE:
            out.append(near_duplicate(rng.choice(out[-2000:]), rng))
        else:
            out.append(new_variant(clauses, rng))
    return out


# -- the two filters ---------------------------------------------------------------------------------------


def run_ours(seeds: list[str], candidates: list[str]) -> tuple[list[bool], float]:
    """The pipeline's novelty check; returns (kept mask, seconds)."""
    start = time.perf_counter()
    check = novelty_check(THRESHOLD, seeds)
    kept = [check({"instruction": c}) is None for c in candidates]
    return kept, time.perf_counter() - start


def run_reference(seeds: list[str], candidates: list[str], workers: int) -> tuple[list[bool], list[float]]:
    """Alpaca's loop; returns (kept mask, seconds per candidate). The pool is opened before timing."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool_tokens = [scorer._tokenizer.tokenize(s) for s in seeds]
    kept, step_seconds = [], []
    with Pool(workers) as pool:
        for text in candidates:
            start = time.perf_counter()
            new_tokens = scorer._tokenizer.tokenize(text)
            scores = pool.map(partial(rouge_scorer._score_lcs, new_tokens), pool_tokens)
            keep = max(s.fmeasure for s in scores) <= THRESHOLD
            if keep:
                pool_tokens.append(new_tokens)
            kept.append(keep)
            step_seconds.append(time.perf_counter() - start)
    return kept, step_seconds


def pool_sizes(n_seeds: int, kept: list[bool]) -> list[int]:
    """The pool size each candidate is compared against."""
    return [n_seeds + k for k in np.cumsum([0] + kept[:-1]).tolist()]


def extrapolate(step_seconds: list[float], sizes_prefix: list[int], sizes_full: list[int]) -> tuple[float, list]:
    """Measured prefix time + the fitted `c0 + c1 * pool_size` over the rest; returns (seconds, [c0, c1])."""
    c1, c0 = np.polyfit(sizes_prefix, step_seconds, 1)
    rest = sizes_full[len(step_seconds) :]
    return sum(step_seconds) + len(rest) * c0 + c1 * sum(rest), [float(c0), float(c1)]


def growth(sizes: list[int], seconds: list[float]) -> list[dict]:
    """The exponent k of t ~ N^k between consecutive sizes."""
    return [
        {"from": a, "to": b, "exponent": round(math.log(tb / ta) / math.log(b / a), 2)}
        for (a, ta), (b, tb) in zip(zip(sizes, seconds), zip(sizes[1:], seconds[1:]))
    ]


# -- main --------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="5000,20000,50000")
    ap.add_argument("--reference-max", type=int, default=2000, help="run the reference fully up to this N")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3, help="medians over this many runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds-file", default="seeds/biomed.jsonl")
    ap.add_argument("--out", default="benchmarks/results/b3_novelty.json")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    seeds = [s["instruction"] for s in load_seeds(args.seeds_file)]
    candidates = make_candidates(seeds, sizes[-1], args.seed)
    reference_runs: dict[int, list] = {}  # prefix length -> [(kept, step_seconds)] per repeat
    rows = []
    for n in sizes:
        stream = candidates[:n]
        ours = [run_ours(seeds, stream) for _ in range(args.repeats)]
        kept = ours[0][0]
        prefix = min(n, args.reference_max)
        if prefix not in reference_runs:
            reference_runs[prefix] = [run_reference(seeds, stream[:prefix], args.workers) for _ in range(args.repeats)]
        ref_kept = reference_runs[prefix][0][0]
        estimates = [
            extrapolate(steps, pool_sizes(len(seeds), ref_kept), pool_sizes(len(seeds), kept))
            for _, steps in reference_runs[prefix]
        ]
        ours_s = statistics.median(t for _, t in ours)
        ref_s = statistics.median(s for s, _ in estimates)
        diff = [i for i, (a, b) in enumerate(zip(kept, ref_kept)) if a != b]
        rows.append(
            {
                "n": n,
                "ours_seconds": round(ours_s, 4),
                "reference_seconds": round(ref_s, 3),
                "speedup": round(ref_s / ours_s, 1),
                "extrapolated": prefix < n,
                "reference_measured_n": prefix,
                "reference_cost_fit_c0_c1": estimates[0][1] if prefix < n else None,
                "kept_ours": sum(kept),
                "kept_ours_in_compared": sum(kept[:prefix]),
                "kept_reference_in_compared": sum(ref_kept),
                "identical": not diff,
                "compared_first": prefix,
                "mismatches": [{"index": i, "instruction": stream[i], "ours_kept": kept[i]} for i in diff[:5]],
            }
        )
        print(
            f"N={n}: ours {ours_s:.3f}s, reference {ref_s:.2f}s{' (extrapolated)' if prefix < n else ''}, "
            f"kept {sum(kept)}, identical on first {prefix}: {rows[-1]['identical']}",
            file=sys.stderr,
        )

    result = {
        **header("B3 novelty filter", "identical kept set, >= 100x faster at 20K", ("rouge-score", "numpy")),
        "threshold": THRESHOLD,
        "workers": args.workers,
        "repeats": args.repeats,
        "seeds": len(seeds),
        "near_duplicate_rate": DUP_RATE,
        "candidate_seed": args.seed,
        "reference": "Alpaca loop: rouge_score tokens, Pool(workers).map(partial(rouge_scorer._score_lcs, new), pool) "
        "per candidate; one Pool opened before timing (Alpaca opens one per candidate)",
        "extrapolation": "above reference_measured_n: measured prefix seconds + sum over the rest of "
        "c0 + c1 * pool_size (least squares on the prefix's per-candidate times), pool sizes from "
        "our kept set",
        "rows": rows,
        "growth_ours": growth(sizes, [r["ours_seconds"] for r in rows]),
        "growth_reference": growth(sizes, [r["reference_seconds"] for r in rows]),
    }
    write_result(args.out, result)

    print("| N | kept | ours (s) | reference (s) | speed-up | identical |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ref = f"{r['reference_seconds']}" + (
            f" (extrapolated from {r['reference_measured_n']})" if r["extrapolated"] else ""
        )
        ident = f"{r['identical']}" + (f" (first {r['compared_first']})" if r["extrapolated"] else "")
        print(f"| {r['n']} | {r['kept_ours']} | {r['ours_seconds']} | {ref} | {r['speedup']}x | {ident} |")
    print(f"\nwritten: {args.out}")
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
