"""The evaluation metrics on hand-made cases (values worked out by hand in the comments)."""

import pytest

from selfspec_plugin import metrics


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        ("HMG-CoA reductase", "HMG-CoA reductase", 1.0),  # exact
        ("The beta cells.", "beta cells", 1.0),  # article, punctuation and case normalised
        ("CHROMOSOME 7", "chromosome 7", 1.0),
        ("beta cells of the pancreas", "beta cells", 2 / 3),  # P 2/4, R 2/2 -> 2*.5*1/1.5
        ("alpha cells", "beta cells", 0.5),  # P 1/2, R 1/2
        ("calor", "rubor, calor, tumor, dolor", 1.0),  # BoX: gold split on ", ", best alternative
        ("calor and rubor", "rubor, calor, tumor, dolor", 0.5),  # vs "calor": P 1/3, R 1 -> .5
        ("heat", "rubor, calor, tumor, dolor", 0.0),
        ("", "yes", 0.0),
        ("the", "yes", 0.0),  # normalises to nothing
    ],
)
def test_token_f1(pred, gold, expected):
    assert metrics.token_f1(pred, gold) == pytest.approx(expected)


def test_normalisation_drops_articles_only_as_words():
    assert metrics.normalize_answer("The Anatomy, an ATLAS: a theme!") == "anatomy atlas theme"


def test_rouge_l_is_order_sensitive_and_stemmed():
    assert metrics.token_f1("cells beta", "beta cells") == 1.0
    assert metrics.rouge_l("cells beta", "beta cells") == pytest.approx(0.5)  # LCS 1 of 2
    assert metrics.rouge_l("inhibits kinases", "inhibit kinase") == pytest.approx(1.0)  # Porter stemmer
    assert metrics.rouge_l("tumor", "rubor, calor, tumor, dolor") == pytest.approx(1.0)


def test_exact_match():
    assert metrics.exact_match("Beta cells.", "beta cells") == 1.0
    assert metrics.exact_match("beta", "beta cells") == 0.0


@pytest.mark.parametrize(
    "pred, label",
    [
        ("Yes, it does.", "yes"),
        ("The answer is maybe", "maybe"),
        ("no, not yes", "no"),  # the earliest label wins
        ("Not sure", None),
        ("nobody knows", None),  # whole words only
    ],
)
def test_parse_label(pred, label):
    assert metrics.parse_label(pred, ["yes", "no", "maybe"]) == label


def test_accuracy_and_macro_f1():
    golds = ["yes", "yes", "no", "maybe"]
    preds = ["yes", "no", "no", None]
    assert metrics.accuracy(preds, golds) == 0.5
    # yes: tp 1 fp 0 fn 1 -> 2/3; no: tp 1 fp 1 fn 0 -> 2/3; maybe: tp 0 -> 0
    assert metrics.macro_f1(preds, golds, ["yes", "no", "maybe"]) == pytest.approx(4 / 9)


def test_entity_prf_is_micro_over_documents():
    preds = ["Hepatitis, Wilson disease", "none"]
    golds = ["Wilson disease, copper toxicosis", "cancer"]
    # doc 1: tp 1 (wilson disease), fp 1 (hepatitis), fn 1; doc 2: fn 1 -> P 1/2, R 1/3, F1 0.4
    prf = metrics.entity_prf(preds, golds)
    assert prf == pytest.approx({"precision": 0.5, "recall": 1 / 3, "f1": 0.4})
    assert metrics.split_entities("x; B\nthe c, none,") == {"x", "b", "c"}


def test_paired_bootstrap():
    same = metrics.paired_bootstrap([0.2, 0.5, 0.1], [0.2, 0.5, 0.1])
    assert same == {"diff": 0.0, "ci": [0.0, 0.0], "significant": False, "p": 1.0}
    better = metrics.paired_bootstrap([0.0] * 20, [1.0] * 20)
    assert better["diff"] == 1.0 and better["ci"] == [1.0, 1.0] and better["significant"]
    assert better["p"] == 1 / 2001  # no sign flip of 20 wins reaches +-1 (2 in 2^20)
    noisy = metrics.paired_bootstrap([0.0, 1.0] * 10, [1.0, 0.0] * 10)  # as many wins as losses
    assert noisy["diff"] == 0.0 and noisy["ci"][0] < 0 < noisy["ci"][1] and not noisy["significant"]
    assert noisy["p"] == 1.0
    # 6 wins, 1 loss of 7: the exact two-sided sign-flip p is 2 * 8 / 128 = 0.125
    few = metrics.paired_bootstrap([0.0] * 7, [1.0] * 6 + [-1.0], resamples=20000)
    assert few["p"] == pytest.approx(0.125, abs=0.01)


def test_holm_and_benjamini_hochberg():
    ps = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005 0.01 0.03 0.04 times 4 3 2 1, made monotone: 0.02 0.03 0.06 0.06
    assert metrics.holm(ps) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted p * 4 / rank: 0.02 0.02 0.04 0.04, made monotone from the top
    assert metrics.benjamini_hochberg(ps) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert metrics.holm([0.6, 0.9]) == [1.0, 1.0] and metrics.benjamini_hochberg([0.6, 0.9]) == [0.9, 0.9]
    assert metrics.holm([]) == [] == metrics.benjamini_hochberg([])
