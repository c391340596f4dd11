"""The data-quality gates (issue 31): each drops what it is for and keeps the good answers that look like it."""

import json

import pytest
from conftest import ROOT

from selfspec_plugin import filters as f
from selfspec_plugin.config import SelfSpecConfig


def rec(instruction, output, inp=""):
    return {"id": "x", "instruction": instruction, "input": inp, "output": output}


def test_verbatim_drops_an_answer_copied_from_the_task_and_keeps_real_answers():
    check = f.verbatim_check()
    copied = rec(
        'Answer the question, "This answer is confirmed by the text.", by editing it.',
        "This answer is confirmed by the text.",
    )
    assert check(copied) == "verbatim:instruction"
    passage = "Biopsies of the gastric mucosa showed infiltration of lymphocytes into the epithelium near the pylorus."
    assert check(rec("Summarise the finding.", "showed infiltration of lymphocytes into the epithelium", passage)) == (
        "verbatim:input"
    )
    assert check(rec("Name the tissue.", "gastric mucosa", passage)) is None  # an entity: fewer than five words
    options = "Hallmarks: resisting cell death, enabling replicative immortality, inducing angiogenesis."
    assert (
        check(rec("Which hallmarks apply?", "resisting cell death, enabling replicative immortality", options)) is None
    )
    assert (
        check(rec("Explain the finding.", "Lymphocytes infiltrated the epithelium, a sign of gastritis.", passage))
        is None
    )


@pytest.mark.parametrize(
    "instruction, inp, output, reason",
    [
        ("Is aspirin an antiplatelet drug?", "", "No.", None),
        ("Answer the question.", "Does metformin lower HbA1c?", "yes", None),
        ("Do the listed drugs share a target", "", "no", None),  # a yes/no question without its question mark
        ("Decide whether the drugs interact; output true or false.", "warfarin and aspirin", "true", None),
        ("Classify the sentiment of the sentence.", "Profit rose 20 %.", "Positive", None),
        ("Determine how the author of this tweet feels about the ticker.", "$QRTZ reports tomorrow", "neutral", None),
        ("Describe the mechanism of action of aspirin.", "", "no", "unasked_label:no"),
        ("In what sport would you prefer to play", "", "No", "unasked_label:no"),
        ("List the adverse effects of statins.", "", "False.", "unasked_label:false"),
        # a question inside an input that the instruction never points at does not ask for the label
        (
            "Make a list from the device recommendations.",
            "Is the warranty valid? Confirm it.",
            "no",
            "unasked_label:no",
        ),
        ("Read the headline and answer the question that follows it.", "Gold slips. Is gold up?", "no", None),
        ("Describe the mechanism of action of aspirin.", "", "It blocks COX-1.", None),  # not a bare label
    ],
)
def test_unasked_label_keeps_labels_the_task_asks_for(instruction, inp, output, reason):
    assert f.unasked_label_check(rec(instruction, output, inp)) == reason


def test_the_shipped_seeds_pass_every_default_gate():
    """The gates are on by default because they drop none of the expert-written seed answers."""
    checks = [f.verbatim_check(), f.unasked_label_check]
    for path in (ROOT / "seeds" / "biomed.jsonl", ROOT / "seeds" / "finance.jsonl"):
        for line in path.read_text().splitlines():
            seed = {"input": "", **json.loads(line)}
            assert f.run_checks(checks, seed) is None, seed


def test_label_share_caps_one_short_answer_and_is_off_by_default():
    check = f.label_share_check(0.25, floor=2)
    outputs = ["no", "no", "no"] + ["A long answer about the gene."] * 9 + ["no"]
    reasons = [check(rec("Q?", o)) for o in outputs]
    # at most max(2, 0.25 x the triplets kept so far) "no": two pass, the third is over; once 11 are kept, a third
    assert reasons == [None, None, "label_share:no"] + [None] * 9 + [None]
    assert check(rec("Q?", "No.")) == "label_share:no"  # 4 > 0.25 x 13
    off = f.label_share_check(None)
    assert all(off(rec("Q?", "no")) is None for _ in range(20))


def test_off_domain_drops_what_shares_no_words_with_the_seeds_and_is_off_by_default():
    reference = ["Extract the disease names from the abstract: chronic kidney disease, hypertension"]
    check = f.off_domain_check(0.2, reference)
    assert check(rec("In what sport would you prefer to play?", "")) == "off_domain:0.00"
    assert check(rec("Extract every disease named in the abstract.", "")) is None
    assert f.off_domain_check(None, reference)(rec("In what sport would you prefer to play?", "")) is None


def test_num_triplets_and_num_instructions_are_not_both_set():
    with pytest.raises(ValueError, match="set one"):
        SelfSpecConfig(seeds="s.jsonl", num_triplets=10, num_instructions=20)
    assert SelfSpecConfig(seeds="s.jsonl", num_triplets=10, num_instructions=5000).num_triplets == 10  # a reload
