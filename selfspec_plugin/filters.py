"""Filters over generated records (Self-Instruct rules). Each check returns a rejection reason or None.

`rouge_tokens` and `rouge_l_f` reproduce `rouge_score`'s rougeL (default tokenizer, no stemming), so the
novelty decisions match the Self-Instruct/Alpaca reference; `NoveltyPool` reaches them without scoring
every pair: a length filter and a prefix filter over an inverted index find the few instructions whose
multiset overlap (an upper bound of the LCS) could pass the threshold, and only those are scored.
"""

from __future__ import annotations

import math
import re
from collections import Counter
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


def _elements(toks: list[str]) -> list[str]:
    """A token multiset as distinct elements: the k-th occurrence of `tok` is `tok` (k = 1) or "tok k" (tokens
    have no spaces), so the multiset overlap sum(min(count_a, count_b)) is the size of a set intersection."""
    seen: dict[str, int] = {}
    out = []
    for tok in toks:
        k = seen[tok] = seen.get(tok, 0) + 1
        out.append(tok if k == 1 else f"{tok} {k}")
    return out


class NoveltyPool:
    """Instructions kept so far; `most_similar` gives the best ROUGE-L F above `threshold`, else None.

    Why skipping is safe: the multiset overlap ov of two token lists bounds their LCS, so an instruction of n
    tokens can score F > threshold against a query of m tokens only if 2*ov/(m+n) > a = threshold - 1e-9 (the
    margin covers the float rounding of this and the bounds below), i.e. only if ov >= need(n) =
    ceil(a*(m+n)/2). As ov <= min(m, n), lengths with need(n) > min(m, n) are skipped whole (length filter).
    Prefix filter: an instruction that holds none of the first m - need + 1 of the query's m elements shares
    at most need - 1 of them, so only the ids listed under those elements are candidates. This holds for any
    order of the query's elements; rarest first (by the current pool, which grows) keeps those lists short.
    The index is split by length (element -> n -> ids), so each length probes only its own, shorter, prefix.
    Candidates are then checked with their exact overlap, and the LCS is computed for those that pass.
    """

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.tokens: list[list[str]] = []
        self.elements: list[frozenset[str]] = []
        self.index: dict[str, dict[int, list[int]]] = {}  # element -> length -> ids of the instructions holding it
        self.frequency: Counter[str] = Counter()  # element -> how many instructions hold it
        self.lengths: set[int] = set()

    def add(self, text: str) -> None:
        toks = rouge_tokens(text)
        j, n = len(self.tokens), len(toks)
        self.tokens.append(toks)
        self.elements.append(frozenset(_elements(toks)))
        for x in self.elements[j]:
            self.index.setdefault(x, {}).setdefault(n, []).append(j)
        self.frequency.update(self.elements[j])
        self.lengths.add(n)

    def most_similar(self, text: str) -> Optional[tuple[float, int]]:
        """The first pooled instruction whose ROUGE-L F with `text` exceeds the threshold: (score, index).

        Candidates are tried in the order of a full scan over every instruction sharing a token with `text`
        (best overlap bound first; ties by the first query token they share, then by index), so the same
        instruction is returned as by that scan."""
        toks = rouge_tokens(text)
        m, a = len(toks), self.threshold - 1e-9
        query = sorted(_elements(toks), key=self.frequency.__getitem__)  # rarest first
        qset = frozenset(query)
        candidates: list[int] = []
        for n in self.lengths:
            need = max(1, math.ceil(a * (m + n) / 2))  # a pair sharing no token is never similar
            if need > min(m, n):
                continue
            ids: set[int] = set()
            for x in query[: m - need + 1]:
                ids.update(self.index.get(x, {}).get(n, ()))
            candidates += (j for j in ids if len(qset & self.elements[j]) >= need)
        order = list(dict.fromkeys(toks))

        def rank(j: int) -> tuple[float, int, int]:
            first_shared = next(r for r, tok in enumerate(order) if tok in self.elements[j])
            return -len(qset & self.elements[j]) / (m + len(self.tokens[j])), first_shared, j

        for j in sorted(candidates, key=rank):
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

    def check(rec: dict) -> Optional[str]:  # the instruction only, as in the Alpaca reference
        for word, pattern in patterns:
            if pattern.search(rec["instruction"]):
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


# The Alpaca placeholder for an empty input ("<noinput>"): seen in the seeds' format, a small generator writes it as
# its whole answer or inside one (docs/benchmarks.md, "Measurements behind code choices"); such a triplet teaches
# nothing.
PLACEHOLDER = re.compile(r"<\s*no\s*input\s*>|^\W*no\s*input\W*$", re.IGNORECASE)


def response_check(rec: dict) -> Optional[str]:
    if rec.get("finish_reason") == "length":
        return "truncated_response"
    if not rec["output"].strip():
        return "empty_response"
    if PLACEHOLDER.search(rec["output"]):
        return "placeholder_response"
    return None


def copy_check(threshold: float) -> Check:
    """`copied`: the output restates the input or the instruction (ROUGE-L F above `threshold`) instead of
    answering it; 135M-scale generators do this often, and an adapter trained on it learns to echo."""

    def check(rec: dict) -> Optional[str]:
        out = rouge_tokens(rec["output"])
        out_counts = Counter(out)
        for field in ("input", "instruction"):
            ref = rouge_tokens(rec[field])
            overlap = sum((out_counts & Counter(ref)).values())  # bounds the LCS: skip it when it cannot pass
            if out and ref and 2 * overlap / (len(out) + len(ref)) > threshold - 1e-9:  # margin: as NoveltyPool
                score = 1.0 if out == ref else rouge_l_f(out, ref)
                if score > threshold:
                    return f"copied:{field}:{score:.2f}"
        return None

    return check


def _joined(tokens: list[str]) -> str:
    return f" {' '.join(tokens)} "


def _short_items(text: str, max_words: int = 4) -> bool:
    """A list of two or more short items ("resisting cell death, enabling replicative immortality"): labels or
    entities picked from the options an input offers, which is an answer, not a copy."""
    items = [i for i in re.split(r"[,;\n]", text) if i.strip()]
    return len(items) >= 2 and all(len(rouge_tokens(i)) <= max_words for i in items)


def verbatim_check(min_words: int = 5) -> Check:
    """`verbatim:FIELD`: an output of at least `min_words` words found word for word inside its instruction or
    input. It restates the task instead of answering it; `copied` (ROUGE-L F) misses it when the input is long,
    since the copy then covers little of the input. A list of short items taken from the input's options
    (multi-label classification) is kept: the seed files' only verbatim outputs are of that kind."""

    def check(rec: dict) -> Optional[str]:
        out = rouge_tokens(rec["output"])
        if len(out) < min_words:
            return None
        for field in ("instruction", "input"):
            if _joined(out) in _joined(rouge_tokens(rec[field])):
                if field == "input" and _short_items(rec["output"]):
                    continue
                return f"verbatim:{field}"
        return None

    return check


# A bare label and the words by which a task asks for its family of labels. A yes/no label is also asked by a
# yes/no question: a clause that opens with an auxiliary verb and ends with "?" ("Is aspirin an antiplatelet drug?").
LABELS = {
    "yes": "yes_no", "no": "yes_no", "maybe": "yes_no",
    "true": "true_false", "false": "true_false",
    "positive": "sentiment", "negative": "sentiment", "neutral": "sentiment",
}  # fmt: skip
LABEL_CUES = {
    "yes_no": re.compile(r"\b(yes|whether|maybe|agree|affirmative|confirm)\b", re.I),
    "true_false": re.compile(r"\b(true|false|correct|incorrect|valid|supported|interact\w*)\b", re.I),
    "sentiment": re.compile(
        r"\b(positive|negative|neutral|sentiment|polarity|tone|feel\w*|attitude|opinion|stance|favou?rable)\b", re.I
    ),
}
AUXILIARY = r"(?:is|are|was|were|do|does|did|can|could|should|would|will|has|have|had|may|might|must|shall)\b"
YES_NO_QUESTION = re.compile(rf"(?:^|[.!?:;\n\"(]\s*){AUXILIARY}[^?.!\n]*\?|^\s*{AUXILIARY}", re.I)  # or opens the text


def bare_label(output: str) -> Optional[str]:
    """The label an output consists of ("No.", "Positive"), or None."""
    word = re.sub(r"[^a-z]", "", output.lower())
    return word if word in LABELS else None


DECIDE_IF = re.compile(r"\b(?:determine|decide|judge|tell|check|verify|assess|state|say|indicate|predict)\s+if\b", re.I)
# An instruction that points at a question or a label elsewhere ("Answer the question that follows the headline.")
POINTS_AT = re.compile(
    r"\b(?:questions?|answers?|binary|respond|reply|claim|statement|hypothesis|label|classify|sentiment)\b", re.I
)


def _cues(text: str, family: str) -> bool:
    return bool(
        LABEL_CUES[family].search(text)
        or (family == "yes_no" and (YES_NO_QUESTION.search(text) or DECIDE_IF.search(text)))
    )


def asks_for(rec: dict, family: str) -> bool:
    """Does the task ask for a label of this family? Its instruction does, or it points at a question or a label
    and its input holds one: a question in a generated input under an instruction that never mentions it is
    noise ("Make a list from the recommendations." + "... Confirm the warranty ..." -> "no")."""
    return _cues(rec["instruction"], family) or bool(
        POINTS_AT.search(rec["instruction"]) and _cues(rec["input"], family)
    )


def unasked_label_check(rec: dict) -> Optional[str]:
    """`unasked_label:LABEL`: a bare label (yes/no/maybe, true/false, positive/negative/neutral) answering a task
    that asks for no label. A small generator falls back on "no" for anything it cannot answer, and an adapter
    trained on it answers "no" to everything; a label the task asks for ("Is aspirin an antiplatelet drug?" ->
    "No.") is kept."""
    label = bare_label(rec["output"])
    return f"unasked_label:{label}" if label and not asks_for(rec, LABELS[label]) else None


def short_answer(output: str, max_words: int = 3) -> Optional[str]:
    """An output of at most `max_words` words, its case and end punctuation ignored (the unit of `inspect`'s label
    balance), or None."""
    words = output.lower().split()
    return " ".join(words).strip(" .!?;:,\"'") if 0 < len(words) <= max_words else None


def label_share_check(share: Optional[float], floor: int = 5) -> Check:
    """`label_share:ANSWER`: the triplet would make one short answer more than `share` of the triplets kept so far
    (at least `floor` of each are allowed, so a small run is not starved). Runs last among the response filters:
    what passes it is kept, so the final data holds each short answer at most max(floor, share x triplets) times.
    Off (a no-op) when `share` is None: it can drop good triplets, so it is opt-in (`max_label_share`)."""
    counts: Counter[str] = Counter()
    kept = 0

    def check(rec: dict) -> Optional[str]:
        nonlocal kept
        answer = short_answer(rec["output"]) if share is not None else None
        if answer is not None and counts[answer] + 1 > max(floor, share * (kept + 1)):
            return f"label_share:{answer}"
        kept += 1
        if answer is not None:
            counts[answer] += 1
        return None

    return check


STOPWORDS = frozenset(
    "the and for are was were with that this these those from into than then them they their there what which who "
    "whom whose when where why how does did can could should would will shall may might must not but all any each "
    "every some such only also more most other its his her our your you about above after before between both "
    "during under over out off very has have had been being given following use using used based one two three "
    "per via whether".split()
)


def content_words(text: str) -> set[str]:
    return {t for t in rouge_tokens(text) if len(t) > 2 and not t.isdigit() and t not in STOPWORDS}


def vocabulary(texts: list[str]) -> set[str]:
    return set().union(*(content_words(t) for t in texts))


def seed_texts(seeds: list[dict]) -> list[str]:
    """The seed tasks as the reference that drift and `off_domain` measure against."""
    return [f"{s['instruction']} {s['input']} {s['output']}" for s in seeds]


def drift(data: list[dict], reference: list[str], threshold: float = 0.3, examples: int = 5) -> dict:
    """Off-domain drift, measured: the share of each triplet's instruction + input content words that occur in
    the vocabulary of the `reference` texts (the pipeline passes the seed tasks). Low overlap = drifted off the
    domain ("bagel", "exoplanets"). The report's measure; `off_domain_check` acts on the same score."""
    vocab = vocabulary(reference)
    scored = sorted(
        (score, r["id"])
        for r in data
        if (score := domain_overlap(f"{r['instruction']} {r['input']}", vocab)) is not None
    )
    below = [i for s, i in scored if s < threshold]
    return {
        "threshold": threshold,
        "vocabulary": len(vocab),
        "scored": len(scored),
        "median": round(scored[len(scored) // 2][0], 3) if scored else None,
        "below": len(below),
        "lowest": [i for _, i in scored[:examples]],
    }


def domain_overlap(text: str, vocab: set[str]) -> Optional[float]:
    """The share of `text`'s content words found in `vocab` (None: no content words)."""
    words = content_words(text)
    return len(words & vocab) / len(words) if words else None


def off_domain_check(threshold: Optional[float], reference: list[str]) -> Check:
    """`off_domain:S`: the instruction + input shares less than `threshold` of its content words with the
    reference texts (the seed tasks): the score `inspect` reports as drift, acted on. Off when `threshold` is None:
    a new in-domain term scores low too, so it is opt-in (`min_domain_overlap`; docs/benchmarks.md, B8)."""
    vocab = vocabulary(reference) if threshold is not None else set()

    def check(rec: dict) -> Optional[str]:
        if threshold is None:
            return None
        score = domain_overlap(f"{rec['instruction']} {rec['input']}", vocab)
        return f"off_domain:{score:.2f}" if score is not None and score < threshold else None

    return check


def run_checks(checks: list[Check], rec: dict) -> Optional[str]:
    for check in checks:
        reason = check(rec)
        if reason:
            return reason
    return None
