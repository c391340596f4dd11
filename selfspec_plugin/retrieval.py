"""Grounding responses in a local domain corpus: BM25 (bm25s) over its documents, or over the chunks of a folder
of Markdown, text, HTML and PDF files (corpus.py).

query = instruction + input; the top-k documents are given to the response prompt as background, and
their ids are recorded with each triplet. The index is built once per run and cached in the run dir.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import corpus
from .corpus import read_records
from .errors import SelfSpecError


def load_corpus(
    path: str | Path,
    text_field: str = "text",
    chunk_tokens: int | None = None,
    chunk_overlap: int | None = None,
    tokenizer=None,
) -> list[dict]:
    """The documents the retriever indexes, as `{id, text, ...}`. A single .jsonl/.txt/.parquet file without
    `chunk_tokens`: its records, whole, as `{id, text}`. A folder, a glob, a .md/.html/.pdf file, or `chunk_tokens`
    set: chunks of at most `chunk_tokens` tokens of `tokenizer` (words without one) with their source, page or
    section and offsets (corpus.py)."""
    if corpus.is_record_file(path) and chunk_tokens is None:
        docs = read_records(path, text_field)
        if not docs:
            raise SelfSpecError(f"selfspec.corpus: {path} holds no documents")
        return docs
    chunks, _ = corpus.chunk(corpus.read_corpus(str(path), text_field), chunk_tokens, chunk_overlap, tokenizer)
    return chunks


def run_corpus(cfg, backend) -> list[dict]:
    """A run's documents: chunked in the generator's own tokens (the backend's tokenizer, where it has one: vLLM
    and transformers; words for a backend that has none), the files skipped said once on stderr."""
    if corpus.is_record_file(cfg.corpus) and cfg.chunk_tokens is None:
        return load_corpus(cfg.corpus, cfg.corpus_text_field)
    found = corpus.read_corpus(cfg.corpus, cfg.corpus_text_field)
    for name, why in found.skipped:
        print(f"selfspec.corpus: skipped {name}: {why}", file=sys.stderr)
    chunks, _ = corpus.chunk(found, cfg.chunk_tokens, cfg.chunk_overlap, getattr(backend, "tokenizer", None))
    return chunks


class BM25Retriever:
    """bm25s index over a corpus; `search(queries, k)` returns, per query, the top-k `{id, text, score}`."""

    name = "bm25"

    def __init__(self, docs: list[dict], cache_dir: Path | None = None):
        import bm25s

        self.docs = docs
        if cache_dir is not None and (cache_dir / "params.index.json").is_file():
            self.index = bm25s.BM25.load(str(cache_dir), backend="auto")
            return
        self.index = bm25s.BM25(backend="auto")  # numba's top-k (numba comes with vLLM) when installed
        self.index.index(
            bm25s.tokenize([d["text"] for d in docs], stopwords="en", show_progress=False), show_progress=False
        )
        if cache_dir is not None:
            tmp = cache_dir.with_name(cache_dir.name + ".tmp")
            self.index.save(str(tmp))
            tmp.rename(cache_dir)

    def search(self, queries: list[str], k: int) -> list[list[dict]]:
        import bm25s

        k = min(k, len(self.docs))
        tokens = bm25s.tokenize(queries, stopwords="en", show_progress=False)
        threads = -1 if self.index.backend == "numba" else 1  # numba: every core; numpy: one (no process pool)
        results, scores = self.index.retrieve(tokens, k=k, show_progress=False, n_threads=threads)
        return [
            [{**self.docs[int(i)], "score": round(float(s), 4)} for i, s in zip(row, srow) if s > 0]
            for row, srow in zip(results, scores)
        ]
