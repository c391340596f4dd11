"""Filters over generated records (Self-Instruct rules). Each check returns a rejection reason or None.

`rouge_tokens` and `rouge_l_f` reproduce `rouge_score`'s rougeL (default tokenizer, no stemming), so the
novelty decisions match the Self-Instruct/Alpaca reference; `NoveltyPool` reaches them without scoring
every pair: an inverted index finds the instructions that share a token, and the multiset overlap (an
upper bound of the LCS) skips those that cannot pass the threshold.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable, Optional

Check = Callable[[dict], Optional[str]]

BLACKLIST = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
    "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
)  # fmt: skip


@dataclass(frozen=True)
class FilterSpec:
    """A registered filter: `build(settings)` returns the check; lower `order` runs first."""

    name: str
    stage: str  # "instruction" or "response"
    build: Callable[[dict], Check]
    order: int = 50


def rouge_tokens(text: str) -> list[str]:
    """rouge_score's default tokenizer without stemming."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def lcs_length(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l_f(a: list[str], b: list[str]) -> float:
    """ROUGE-L F computed as rouge_score does (precision, recall, then 2PR/(P+R)), so that scores that are
    mathematically equal to the threshold round the same way and the keep/drop decisions are identical."""
    return _f_from_lcs(lcs_length(a, b), len(a), len(b)) if a and b else 0.0


def _f_from_lcs(lcs: int, m: int, n: int) -> float:
    precision, recall = lcs / n, lcs / m
    return 2 * precision * recall / (precision + recall) if lcs else 0.0


class NoveltyPool:
    """Instructions kept so far; `most_similar` gives the best ROUGE-L F above `threshold`, else None."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.tokens: list[list[str]] = []
        self.index: dict[str, list[tuple[int, int]]] = defaultdict(list)

    def add(self, text: str) -> None:
        toks = rouge_tokens(text)
        j = len(self.tokens)
        self.tokens.append(toks)
        for tok, count in Counter(toks).items():
            self.index[tok].append((j, count))

    def most_similar(self, text: str) -> Optional[tuple[float, int]]:
        """The first pooled instruction whose ROUGE-L F with `text` exceeds the threshold: (score, index)."""
        toks = rouge_tokens(text)
        overlap: dict[int, int] = defaultdict(int)
        for tok, count in Counter(toks).items():
            for j, c in self.index.get(tok, ()):
                overlap[j] += min(count, c)
        # LCS <= multiset overlap, so F(overlap) bounds the F score: try the best bounds first. The margin
        # keeps a bound that rounds differently from the score itself from cutting the search short.
        for j, ov in sorted(overlap.items(), key=lambda kv: -kv[1] / (len(toks) + len(self.tokens[kv[0]]))):
            if _f_from_lcs(ov, len(toks), len(self.tokens[j])) < self.threshold - 1e-9:
                break  # nothing after this can pass
            score = rouge_l_f(toks, self.tokens[j])
            if score > self.threshold:
                return score, j
        return None


def word_count_check(min_words: int, max_words: int) -> Check:
    def check(rec: dict) -> Optional[str]:
        n = len(rec["instruction"].split())
        if n < min_words:
            return "too_short"
        if n > max_words:
            return "too_long"
        return None

    return check


def blacklist_check(words: tuple[str, ...] = BLACKLIST) -> Check:
    patterns = [(w, re.compile(rf"\b{re.escape(w)}\b", re.I)) for w in words]

    def check(rec: dict) -> Optional[str]:
        text = rec["instruction"] + "\n" + rec["input"]
        for word, pattern in patterns:
            if pattern.search(text):
                return f"blacklist:{word}"
        return None

    return check


def start_check(rec: dict) -> Optional[str]:
    first = rec["instruction"][:1]
    if not first or not first.isascii() or not first.isalnum():
        return "bad_start"
    return None


def novelty_check(threshold: float, existing: list[str]) -> Check:
    pool = NoveltyPool(threshold)
    for text in existing:
        pool.add(text)

    def check(rec: dict) -> Optional[str]:
        hit = pool.most_similar(rec["instruction"])
        if hit is not None:
            return f"similar:{hit[0]:.2f}"
        pool.add(rec["instruction"])  # runs last: passing here means kept
        return None

    return check


def response_check(rec: dict) -> Optional[str]:
    if rec.get("finish_reason") == "length":
        return "truncated_response"
    if not rec["output"].strip():
        return "empty_response"
    return None


def run_checks(checks: list[Check], rec: dict) -> Optional[str]:
    for check in checks:
        reason = check(rec)
        if reason:
            return reason
    return None
