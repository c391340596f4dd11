"""Evaluation metrics: pure functions over strings and score lists.

Token F1 and ROUGE-L follow the BoX evaluation script (In-BoXBART `scripts/evaluation.py`, the metric of
Kang et al.): SQuAD normalisation (lowercase, no punctuation, no articles a/an/the, single spaces), the
gold answer split on ", " into alternatives, and the best score over them. The tasks' standard metrics
(accuracy and macro-F1 over a label set, entity-level F1), a paired bootstrap with a sign-flip test, and the Holm
and Benjamini-Hochberg adjustments for many comparisons sit beside them.
"""

from __future__ import annotations

import functools
import random
import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def gold_alternatives(gold: str) -> list[str]:
    """BoX: a gold output "a, b, c" is a list of acceptable answers."""
    return str(gold).split(", ")


def _f1(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def token_f1(pred: str, gold: str) -> float:
    """SQuAD-style token F1, the best over the gold's comma-separated alternatives."""
    return max(_f1(pred, g) for g in gold_alternatives(gold))


def exact_match(pred: str, gold: str) -> float:
    return float(any(normalize_answer(pred) == normalize_answer(g) for g in gold_alternatives(gold)))


def rouge_l(pred: str, gold: str) -> float:
    """ROUGE-L F (rouge_score, Porter stemmer, as BoX), the best over the gold's alternatives."""
    return max(_rouge_scorer().score(g, pred)["rougeL"].fmeasure for g in gold_alternatives(gold))


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def parse_label(pred: str, labels: list[str]) -> str | None:
    """The label a free-text answer names: the earliest label word in it; None if it names none."""
    text = f" {normalize_answer(pred)} "
    found = [(text.find(f" {normalize_answer(label)} "), label) for label in labels]
    found = [(pos, label) for pos, label in found if pos >= 0]
    return min(found)[1] if found else None


def accuracy(preds: list[str | None], golds: list[str]) -> float:
    return sum(p == g for p, g in zip(preds, golds)) / len(golds) if golds else 0.0


def macro_f1(preds: list[str | None], golds: list[str], labels: list[str]) -> float:
    """Mean over the label set of each label's F1 (an unparseable answer is wrong for every label)."""
    scores = []
    for label in labels:
        tp = sum(p == label and g == label for p, g in zip(preds, golds))
        fp = sum(p == label and g != label for p, g in zip(preds, golds))
        fn = sum(p != label and g == label for p, g in zip(preds, golds))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def split_entities(text: str) -> set[str]:
    """A list answer ("a, b; c" or one per line) as a set of normalised mentions; "none" is the empty set."""
    parts = (normalize_answer(p) for p in re.split(r",|;|\n", text))
    return {p for p in parts if p and p != "none"}


def entity_prf(preds: list[str], golds: list[str]) -> dict:
    """Micro precision/recall/F1 of mention sets over all documents (exact match after normalisation)."""
    tp = fp = fn = 0
    for pred, gold in zip(preds, golds):
        p, g = split_entities(pred), split_entities(gold)
        tp, fp, fn = tp + len(p & g), fp + len(p - g), fn + len(g - p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def set_f1(pred: str, gold: str) -> float:
    """One list answer against its gold as sets of mentions (order-free, every item counts once): unlike BoX F1,
    which scores a perfect 4-item list 0.40 against "a, b, c, d" and any single item 1.0. Both empty: 1."""
    p, g = split_entities(pred), split_entities(gold)
    if not p and not g:
        return 1.0
    return 2 * len(p & g) / (len(p) + len(g))


def split_label(text: str, labels: list[str]) -> tuple[str | None, str]:
    """A label-prefixed answer ("Yes, weekly vitamin D3 raised ...") as (its label, the text after it). The label
    must be the answer's first word; the text is what follows its separator."""
    match = re.match(r"\s*([\w-]+)[\s,.;:!-]*(.*)", text, re.S)
    word = normalize_answer(match.group(1)) if match else ""
    label = next((lab for lab in labels if normalize_answer(lab) == word), None)
    return label, (match.group(2).strip() if label else text.strip())


def label_shares(preds: list[str | None], labels: list[str]) -> dict[str, float]:
    """Share of the answers that name each label, plus `unparseable`: a collapse to one answer shows here."""
    n = len(preds) or 1
    return {
        **{lab: sum(p == lab for p in preds) / n for lab in labels},
        "unparseable": sum(p is None for p in preds) / n,
    }


def baselines(golds: list[str], labels: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1 of two answerers that ignore the input: the majority one (always the most common
    gold label of the scored items) and the uniform one (each label with probability 1/L; expected values)."""
    majority = max(labels, key=golds.count)
    share = {lab: golds.count(lab) / len(golds) for lab in labels} if golds else {}
    uniform_f1 = [2 * share[lab] / (len(labels) * share[lab] + 1) if share[lab] else 0.0 for lab in labels]
    return {
        "majority_accuracy": accuracy([majority] * len(golds), golds),
        "majority_macro_f1": macro_f1([majority] * len(golds), golds, labels),
        "uniform_accuracy": 1 / len(labels),
        "uniform_macro_f1": sum(uniform_f1) / len(labels),
    }


def paired_bootstrap(base: list[float], other: list[float], resamples: int = 2000, seed: int = 0) -> dict:
    """Mean of `other - base` over paired items with a 95% percentile bootstrap interval."""
    return stratified_bootstrap([base], [other], resamples, seed)


def stratified_bootstrap(
    base: list[list[float]], other: list[list[float]], resamples: int = 2000, seed: int = 0
) -> dict:
    """The mean over groups (tasks) of each group's mean `other - base` over its paired items, with a 95%
    percentile bootstrap interval; items are resampled within their group, so every task keeps its weight."""
    groups = [[o - b for b, o in zip(bs, os_)] for bs, os_ in zip(base, other)]
    groups = [g for g in groups if g]
    if not groups:
        return {"diff": 0.0, "ci": [0.0, 0.0], "significant": False, "p": 1.0}
    rng = random.Random(seed)

    def mean_of_means(draw) -> float:
        return sum(sum(draw(g)) / len(g) for g in groups) / len(groups)

    means = sorted(mean_of_means(lambda g: (g[rng.randrange(len(g))] for _ in g)) for _ in range(resamples))
    lo, hi = means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]
    diff = mean_of_means(lambda g: g)
    # The p-value of a paired sign-flip (randomization) test of the same statistic: under "no difference" each
    # item's two scores are exchangeable, so each difference is as likely negated. A percentile interval has no
    # p-value of its own, and the Holm / Benjamini-Hochberg adjustments need one.
    flips = sum(
        abs(mean_of_means(lambda g: (d if rng.random() < 0.5 else -d for d in g))) >= abs(diff) - 1e-12
        for _ in range(resamples)
    )
    return {"diff": diff, "ci": [lo, hi], "significant": lo > 0 or hi < 0, "p": (flips + 1) / (resamples + 1)}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the order given."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), in the order given."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i], reverse=True)
    adjusted, running = [0.0] * len(pvalues), 1.0
    for rank, i in enumerate(order):
        running = min(running, len(pvalues) * pvalues[i] / (len(pvalues) - rank))
        adjusted[i] = running
    return adjusted
