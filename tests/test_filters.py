import random

import pytest
from conftest import ROOT
from rouge_score import rouge_scorer

from selfspec_plugin import filters as f


def test_rouge_matches_reference_rouge_score():
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(1)
    words = "the cell gene protein binds inhibits drug patient tumour of a in to and".split()
    for _ in range(300):
        a = " ".join(rng.choices(words, k=rng.randint(0, 12)))
        b = " ".join(rng.choices(words, k=rng.randint(0, 12)))
        expected = scorer.score(a, b)["rougeL"].fmeasure
        assert f.rouge_l_f(f.rouge_tokens(a), f.rouge_tokens(b)) == expected  # bit for bit


def test_novelty_pool_decides_like_brute_force():
    rng = random.Random(7)
    words = (
        "list extract the genes proteins diseases drugs mentioned in text passage abstract classify "
        "sentiment answer question yes no summarize describe"
    ).split()
    texts = [" ".join(rng.choices(words, k=rng.randint(4, 10))) for _ in range(400)]
    check = f.novelty_check(0.7, [])
    kept_pool, kept_brute = [], []
    for t in texts:
        if check({"instruction": t}) is None:
            kept_pool.append(t)
        toks = f.rouge_tokens(t)
        if all(f.rouge_l_f(toks, f.rouge_tokens(k)) <= 0.7 for k in kept_brute):
            kept_brute.append(t)
    assert kept_pool == kept_brute
    assert 0 < len(kept_pool) < len(texts)


def test_novelty_against_seeds_reports_score():
    check = f.novelty_check(0.7, ["Extract all disease names mentioned in the text."])
    reason = check({"instruction": "Extract all the disease names mentioned in this text."})
    assert reason is not None and reason.startswith("similar:") and float(reason.split(":")[1]) > 0.7
    assert check({"instruction": "Which organ produces insulin?"}) is None


@pytest.mark.parametrize(
    "instruction, inp, reason",
    [
        ("Too short here", "", "too_short"),
        (" ".join(["word"] * 151), "", "too_long"),
        ("Draw the structure of the heart.", "", "blacklist:draw"),
        ("Describe the patient record.", "See the attached file.", None),  # the instruction only, as Alpaca
        ("Describe the file of the patient.", "", "blacklist:file"),
        ("- List the genes in the text.", "", "bad_start"),
        ("Élucidez le mécanisme du médicament.", "", "bad_start"),
        ("List the genes named in the passage.", "BRCA1 and TP53", None),
    ],
)
def test_instruction_rules(instruction, inp, reason):
    checks = [f.start_check, f.word_count_check(4, 150), f.blacklist_check()]
    assert f.run_checks(checks, {"instruction": instruction, "input": inp}) == reason


def test_blacklist_matches_words_not_substrings():
    check = f.blacklist_check()
    assert check({"instruction": "Summarize the profile of the mapk pathway", "input": ""}) is None


def test_copied_outputs_are_dropped_with_the_field_they_copy():
    check = f.copy_check(0.7)
    abstract = "Aspirin irreversibly inhibits cyclooxygenase 1 in platelets, lowering thromboxane A2."
    rec = {"instruction": "Summarize the mechanism described in the passage.", "input": abstract}
    assert check({**rec, "output": abstract}) == "copied:input:1.00"
    assert check({**rec, "output": "Summarize the mechanism described in the passage"}) == "copied:instruction:1.00"
    assert check({**rec, "output": "It blocks platelet COX-1, so less thromboxane is made."}) is None
    # an extraction answer is a small part of the input: not a copy
    assert check({"instruction": "Extract the drug.", "input": abstract, "output": "Aspirin"}) is None
    near_copy = {**rec, "output": abstract.replace("in platelets, ", "")}  # ROUGE-L F 0.89 with the input
    assert f.copy_check(0.7)(near_copy) == "copied:input:0.89" and f.copy_check(0.9)(near_copy) is None

    assert f.response_check({"output": "", "finish_reason": "stop"}) == "empty_response"
    assert f.response_check({"output": "partial", "finish_reason": "length"}) == "truncated_response"
    assert f.response_check({"output": "fine", "finish_reason": "stop"}) is None
    for placeholder in ("<noinput>", "<No Input>", "noinput", "muscle <noinput>", "Protein A:\n<noinput>"):
        assert f.response_check({"output": placeholder, "finish_reason": "stop"}) == "placeholder_response", placeholder
    for answer in ("none", "No input is needed: aspirin.", "There was no inputting of data."):  # real answers
        assert f.response_check({"output": answer, "finish_reason": "stop"}) is None, answer


@pytest.mark.slow
def test_novelty_filter_keeps_exactly_what_the_rouge_score_reference_keeps():
    """Self-Instruct/Alpaca's reference: score each candidate against every kept instruction with
    rouge_score (rougeL, no stemming) and keep it if no score exceeds 0.7. 600 generated-looking
    instructions from the seeds' vocabulary and instruction openings, 40% of them near-duplicates (an
    earlier one with 1-4 words replaced), so that many land near the threshold. (benchmarks/b3_novelty.py
    compares the two at 5K-50K.)"""
    import json

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    seeds = [json.loads(line) for line in (ROOT / "seeds" / "biomed.jsonl").read_text().splitlines()]
    vocab = sorted({w.strip(".,:;?()").lower() for s in seeds for w in s["input"].split() if w.isalpha()})
    heads = [" ".join(s["instruction"].split()[:4]) for s in seeds]
    rng = random.Random(11)
    texts: list[str] = []
    for _ in range(600):
        if texts and rng.random() < 0.4:
            words = rng.choice(texts).split()
            for _ in range(rng.randint(1, 4)):
                words[rng.randrange(len(words))] = rng.choice(vocab)
            texts.append(" ".join(words))
        else:
            texts.append(f"{rng.choice(heads)} {' '.join(rng.choices(vocab, k=rng.randint(3, 14)))}.")
    check = f.novelty_check(0.7, [])
    ours = [t for t in texts if check({"instruction": t}) is None]
    reference: list[str] = []
    for t in texts:
        if all(scorer.score(k, t)["rougeL"].fmeasure <= 0.7 for k in reference):
            reference.append(t)
    assert ours == reference
    assert 100 < len(ours) < len(texts) - 100  # many kept, many dropped


def test_a_score_that_rounds_above_the_threshold_is_dropped_as_rouge_score_drops_it():
    """14 tokens inside 26: F = 28/40 = 0.7 exactly, but rouge_score's 2PR/(P+R) rounds to 0.7000000000000001,
    so the reference drops the instruction. Found by benchmarks/b3_novelty.py (ours used 2*lcs/(m+n) and kept it)."""
    short = " ".join(f"w{i}" for i in range(14))
    long = short + " " + " ".join(f"x{i}" for i in range(12))
    reference = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False).score(long, short)["rougeL"].fmeasure
    assert reference > 0.7
    assert f.rouge_l_f(f.rouge_tokens(short), f.rouge_tokens(long)) == reference
    pool = f.NoveltyPool(0.7)
    pool.add(long)
    assert pool.most_similar(short) == (reference, 0)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 0.9, 1.0])
def test_novelty_pool_returns_what_a_full_scan_returns(threshold):
    """The length and prefix filters only skip instructions that cannot pass: `most_similar` returns what a scan
    over every instruction sharing a token returns (best multiset-overlap bound first, ties by the first query
    token shared, then by index), at any threshold, with repeated tokens and a growing pool."""
    rng = random.Random(3)
    words = "the the the of of a and gene protein cell list name x y".split()
    pool, pooled = f.NoveltyPool(threshold), []
    for _ in range(250):
        text = " ".join(rng.choices(words, k=rng.randint(0, 12)))
        toks = f.rouge_tokens(text)
        order = list(dict.fromkeys(toks))
        scan = []
        for j, other in enumerate(pooled):
            overlap = sum(min(toks.count(w), other.count(w)) for w in set(toks))
            if overlap:
                first = min(order.index(w) for w in set(other) if w in order)
                scan.append((-overlap / (len(toks) + len(other)), first, j))
        expected = next(((s, j) for *_, j in sorted(scan) if (s := f.rouge_l_f(toks, pooled[j])) > threshold), None)
        assert pool.most_similar(text) == expected
        if expected is None or rng.random() < 0.3:
            pool.add(text)
            pooled.append(toks)
