"""B4: our BM25 retriever (bm25s) vs rank_bm25 on the same synthetic corpus: index time, top-3 query time.

- ours: `selfspec_plugin.retrieval.BM25Retriever` itself (bm25s, its default method="lucene", k1=1.5, b=0.75,
  `bm25s.tokenize(stopwords="en")`): the index is built, then `search(queries, k=3)` for all queries.
- reference: `rank_bm25.BM25Okapi(k1=1.5, b=0.75)` on the same bm25s tokens, with Okapi's floored IDF
  replaced by Lucene's, log(1 + (N - df + 0.5) / (df + 0.5)) (a 2-line subclass; the scoring loop, where
  the time goes, is rank_bm25's). Lucene's term-frequency part lacks Okapi's constant factor (k1 + 1),
  so the two rank identically; stock BM25Okapi's IDF differs and would reorder some results.
  Top-3 = the 3 best scores above 0 (ours drops zero scores too).

rank_bm25 scores every document per query, so it runs `--reference-queries` of the queries and its
per-query time is extrapolated linearly to all of them (`"extrapolated": true` in the JSON). Agreement is
measured on those queries: `agreement_exact` is the fraction whose top-3 id sets are equal;
`agreement_up_to_ties` also accepts ours when each of its ids scores, under rank_bm25, at least the
reference's 3rd score (ties and float32-vs-float64 rounding can swap equal documents).

The corpus is synthetic: words from a biomedical-ish vocabulary (function words, common terms, made-up
terms and gene symbols) drawn with a Zipf-Mandelbrot distribution, 50-200 words a document; queries are
spans or word samples of random documents (deterministic with `--seed`).

Goal (issue 7): same top-k, >= 50x. Command, from the repo root:

    .venv/bin/python benchmarks/b4_retrieval.py --docs 100000 --queries 5000 --reference-queries 200 --repeats 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import bm25s
import numpy as np
from benchlib import header, write_result
from rank_bm25 import BM25Okapi

from selfspec_plugin.retrieval import BM25Retriever

K = 3
FUNCTION_WORDS = "the of and in to a with for is was were by on that as at from or are be this which not".split()
COMMON = (
    "patients cells expression protein gene tumor treatment disease study clinical risk levels receptor "
    "signaling mutation therapy response cancer infection inflammation mice human increased reduced "
    "associated activity pathway induced effect analysis cohort trial dose serum plasma tissue binding "
    "mechanism regulation outcome survival mortality blood brain liver kidney heart lung bone"
).split()
PREFIXES = (
    "cardio neuro hepato nephro immuno onco myo osteo gastro pneumo derma hemato endo angio cyto lipo "
    "glyco pharmaco patho histo"
).split()
STEMS = ["", "vascul", "gen", "troph", "kin", "phag", "lys", "plas"]
SUFFIXES = "itis osis ase in ome emia pathy cyte genic ectomy ology ic al".split()


def make_vocab(rng: np.random.Generator, n_symbols: int = 20000) -> list[str]:
    """Function words and common terms first (the most frequent ranks), then made-up terms and gene symbols."""
    terms = {p + s + x for p in PREFIXES for s in STEMS for x in SUFFIXES}
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    while len(terms) < len(PREFIXES) * len(STEMS) * len(SUFFIXES) + n_symbols:
        terms.add("".join(rng.choice(letters, rng.integers(2, 5))) + str(rng.integers(1, 30)))
    rest = sorted(terms)
    rng.shuffle(rest)
    return FUNCTION_WORDS + COMMON + rest


def make_corpus(n_docs: int, seed: int) -> tuple[list[str], list[np.ndarray], list[dict]]:
    """(vocab, word ids per document, documents as {id, text}); sentences of 8-20 words."""
    rng = np.random.default_rng(seed)
    vocab = make_vocab(rng)
    p = 1.0 / (np.arange(len(vocab)) + 2.7) ** 1.07
    lengths = rng.integers(50, 201, n_docs)
    words = rng.choice(len(vocab), size=int(lengths.sum()), p=p / p.sum())
    doc_words = np.split(words, np.cumsum(lengths)[:-1])
    docs = []
    for i, ids in enumerate(doc_words):
        cuts = np.cumsum(rng.integers(8, 21, len(ids) // 8 + 1))
        sentences = [" ".join(vocab[w] for w in chunk) for chunk in np.split(ids, cuts[cuts < len(ids)])]
        docs.append({"id": str(i), "text": ". ".join(s[:1].upper() + s[1:] for s in sentences) + "."})
    return vocab, doc_words, docs


def make_queries(vocab: list[str], doc_words: list[np.ndarray], n: int, seed: int) -> list[str]:
    """Half contiguous spans of 4-10 words, half 3-8 words sampled from one random document."""
    rng = np.random.default_rng(seed + 1)
    queries = []
    for _ in range(n):
        ids = doc_words[rng.integers(len(doc_words))]
        if rng.random() < 0.5:
            size = int(rng.integers(4, 11))
            start = int(rng.integers(0, len(ids) - size))
            picked = ids[start : start + size]
        else:
            picked = rng.choice(ids, int(rng.integers(3, 9)), replace=False)
        queries.append(" ".join(vocab[w] for w in picked))
    return queries


class LuceneIdfBM25Okapi(BM25Okapi):
    """rank_bm25's Okapi scoring with Lucene's IDF (bm25s's default method)."""

    def _calc_idf(self, nd):
        self.idf = {w: math.log(1 + (self.corpus_size - df + 0.5) / (df + 0.5)) for w, df in nd.items()}


def tokenize(texts: list[str]) -> list[list[str]]:
    """Our retriever's tokenisation, as strings."""
    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


def run_ours(docs: list[dict], queries: list[str]) -> dict:
    start = time.perf_counter()
    retriever = BM25Retriever(docs)
    index_s = time.perf_counter() - start
    start = time.perf_counter()
    hits = retriever.search(queries, K)
    query_s = time.perf_counter() - start
    return {"index_s": index_s, "query_s": query_s, "top": [[int(h["id"]) for h in row] for row in hits]}


def run_reference(docs: list[dict], queries: list[str], ours_top: list[list[int]]) -> dict:
    """Times the index and the top-3 of `queries`; records, untimed, the reference scores of ours' ids."""
    start = time.perf_counter()
    bm25 = LuceneIdfBM25Okapi(tokenize([d["text"] for d in docs]), k1=1.5, b=0.75)
    index_s = time.perf_counter() - start
    query_s, top, kth, at_ours = 0.0, [], [], []
    for query, ours in zip(tokenize(queries), ours_top):
        start = time.perf_counter()
        scores = bm25.get_scores(query)
        best = [int(i) for i in np.argsort(scores)[::-1][:K] if scores[i] > 0]
        query_s += time.perf_counter() - start
        top.append(best)
        kth.append(float(scores[best[-1]]) if best else 0.0)
        at_ours.append([float(scores[i]) for i in ours])
    return {"index_s": index_s, "query_s": query_s, "top": top, "kth": kth, "at_ours": at_ours}


def agreement(ours_top: list[list[int]], ref: dict) -> tuple[float, float]:
    """(fraction of equal top-k id sets, fraction equal up to ties) over the reference's queries."""
    n = len(ref["top"])
    exact = sum(set(o) == set(r) for o, r in zip(ours_top, ref["top"]))
    ties = sum(
        len(o) == len(r) and all(s >= kth - 1e-5 * abs(kth) for s in at)
        for o, r, kth, at in zip(ours_top, ref["top"], ref["kth"], ref["at_ours"])
    )
    return exact / n, ties / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=100000)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--reference-queries", type=int, default=200, help="rank_bm25 runs this many queries")
    ap.add_argument("--repeats", type=int, default=3, help="medians over this many runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/b4_retrieval.json")
    args = ap.parse_args()

    vocab, doc_words, docs = make_corpus(args.docs, args.seed)
    queries = make_queries(vocab, doc_words, args.queries, args.seed)
    n_ref = min(args.reference_queries, args.queries)
    ours = [run_ours(docs, queries) for _ in range(args.repeats)]
    refs = [run_reference(docs, queries[:n_ref], ours[0]["top"]) for _ in range(args.repeats)]
    exact, ties = agreement(ours[0]["top"], refs[0])

    med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
    ours_index, ours_query = med(ours, "index_s"), med(ours, "query_s")
    ref_index, ref_query = med(refs, "index_s"), med(refs, "query_s") * args.queries / n_ref
    ours_total, ref_total = ours_index + ours_query, ref_index + ref_query
    result = {
        **header("B4 retrieval", "same top-k, >= 50x", ("bm25s", "rank-bm25", "numpy")),
        "docs": args.docs,
        "queries": args.queries,
        "k": K,
        "repeats": args.repeats,
        "seed": args.seed,
        "vocab": len(vocab),
        "corpus_words": int(sum(len(w) for w in doc_words)),
        "ours": "selfspec_plugin.retrieval.BM25Retriever (bm25s method=lucene, k1=1.5, b=0.75, stopwords=en)",
        "reference": "rank_bm25.BM25Okapi(k1=1.5, b=0.75) on the same tokens, IDF replaced by Lucene's",
        "reference_queries": n_ref,
        "extrapolated": n_ref < args.queries,
        "ours_index_s": round(ours_index, 3),
        "ours_query_s": round(ours_query, 3),
        "ours_total_s": round(ours_total, 3),
        "reference_index_s": round(ref_index, 3),
        "reference_query_s": round(ref_query, 3),
        "reference_total_s": round(ref_total, 3),
        "speedup_index": round(ref_index / ours_index, 1),
        "speedup_query": round(ref_query / ours_query, 1),
        "speedup_total": round(ref_total / ours_total, 1),
        "agreement_exact": exact,
        "agreement_up_to_ties": ties,
        "empty_results_ours": sum(not t for t in ours[0]["top"][:n_ref]),
    }
    write_result(args.out, result)

    extra = f" (extrapolated from {n_ref} queries)" if result["extrapolated"] else ""
    print(f"| {args.docs} docs, {args.queries} queries, top-{K} | index (s) | queries (s) | total (s) |")
    print("|---|---|---|---|")
    print(f"| ours (bm25s) | {result['ours_index_s']} | {result['ours_query_s']} | {result['ours_total_s']} |")
    print(
        f"| rank_bm25 | {result['reference_index_s']} | {result['reference_query_s']}{extra} | {result['reference_total_s']} |"
    )
    print(f"| speed-up | {result['speedup_index']}x | {result['speedup_query']}x | {result['speedup_total']}x |")
    print(f"\ntop-{K} agreement on {n_ref} queries: exact {exact:.3f}, up to ties {ties:.3f}\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
