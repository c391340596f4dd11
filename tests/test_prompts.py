import pytest

from selfspec_plugin.prompts import NO_INPUT, brainstorm_prompt, parse_brainstorm, response_prompt

DEMOS = [
    {"instruction": f"Instruction number {i}.", "input": f"Input {i}" if i % 2 else "", "output": f"Out {i}"}
    for i in range(5)
]


def test_brainstorm_prompt_numbers_demos_and_asks_for_the_next():
    p = brainstorm_prompt("r0-p0", DEMOS[:3], "biomedicine")
    assert "about biomedicine" in p.text
    assert "1. Instruction: Instruction number 0.\n1. Input:\n" + NO_INPUT in p.text
    assert "2. Instruction: Instruction number 1.\n2. Input:\nInput 1" in p.text
    assert p.prefix == "###\n4. Instruction:" and p.text.endswith(p.prefix)
    assert p.messages[0]["role"] == "user" and not p.messages[0]["content"].endswith(p.prefix)


PREFIX = "###\n4. Instruction:"


def parse(completion: str, truncated: bool = False) -> list[dict]:
    return parse_brainstorm(PREFIX, completion, truncated)


def test_parse_items_noinput_and_drop_only_the_cut_item_of_a_truncated_generation():
    completion = (
        " Name the gene mutated in cystic fibrosis.\n4. Input:\n<noinput>\n"
        "###\n5. Instruction: Classify the abstract by study design.\n5. Input:\nWe enrolled 30 patients.\n"
        "###\n6. Instruction: List the"
    )
    items = parse(completion, truncated=True)
    assert items[0] == {"instruction": "Name the gene mutated in cystic fibrosis.", "input": ""}
    assert items[1] == {"instruction": "Classify the abstract by study design.", "input": "We enrolled 30 patients."}
    assert items[2] == {"rejected": "truncated", "raw": "6. Instruction: List the"}
    # not truncated: the last item ended where the model stopped; a one-line instruction without an Input field
    assert parse(completion)[2] == {"instruction": "List the", "input": ""}


def test_parse_a_truncated_input_is_dropped_but_a_truncated_stray_output_is_not():
    cut_input = " Define sepsis.\n4. Input:\nA 54-year-old man with a fever of"
    assert parse(cut_input, truncated=True) == [{"rejected": "truncated", "raw": PREFIX.lstrip("#\n") + cut_input}]
    cut_output = " Define sepsis.\n4. Input:\n<noinput>\n4. Output: Sepsis is a life-threatening"
    assert parse(cut_output, truncated=True) == [{"instruction": "Define sepsis.", "input": ""}]


@pytest.mark.parametrize(
    "completion, items",
    [
        pytest.param(  # plural and singular field names
            " Name two enzymes of glycolysis.\n4. Inputs:\n<noinput>\n"
            "###\n5. Instructions: Extract the drug names.\n5. Input: Patients took aspirin and heparin.",
            [
                ("Name two enzymes of glycolysis.", ""),
                ("Extract the drug names.", "Patients took aspirin and heparin."),
            ],
            id="plural-and-singular-field-names",
        ),
        pytest.param(  # stray Output/Response lines end the input and are dropped
            " Identify the disease in the sentence.\n4. Input:\nThe child had measles.\n4. Output: measles\n"
            "###\n5. Instruction: Is metformin an insulin secretagogue?\n5. Input:\n<noinput>\nResponse: No",
            [
                ("Identify the disease in the sentence.", "The child had measles."),
                ("Is metformin an insulin secretagogue?", ""),
            ],
            id="stray-output-lines-end-the-input",
        ),
    ],
)
def test_parse_lenient_field_lines(completion, items):
    assert parse(completion) == [{"instruction": i, "input": x} for i, x in items]


def test_parse_items_without_separators_and_with_drifting_numbers():
    completion = (
        " Name the vector of malaria.\n5. Input:\n<noinput>\n"  # 4. Instruction, then 5. Input
        "7. Instruction: Give the normal range of serum sodium.\n7. Input:\nAdult patient\n"  # no ###
        "Instruction: Spell out the abbreviation COPD.\nInput: <noinput>"
    )  # no number at all
    assert [it.get("instruction") for it in parse(completion)] == [
        "Name the vector of malaria.",
        "Give the normal range of serum sodium.",
        "Spell out the abbreviation COPD.",
    ]
    assert [it.get("input") for it in parse(completion)] == ["", "Adult patient", ""]


def test_parse_consecutive_instructions_and_multiline_items_without_input():
    completion = (
        "\nDesign a biomaterial that slows tumour growth.\n5. Instruction:\n"
        "Determine if the sentence is a claim.\nThe answer should contain two placeholders.\n"
        "6. Instruction:\n"
    )
    items = parse(completion)
    assert items[0] == {"instruction": "Design a biomaterial that slows tumour growth.", "input": ""}
    assert items[1]["rejected"] == "unparseable" and "two placeholders" in items[1]["raw"]  # several lines, no Input
    assert items[2]["rejected"] == "unparseable"  # an empty instruction
    assert len(items) == 3


def test_brainstorm_stop_strings_end_after_the_requested_items():
    p = brainstorm_prompt("r0-p0", DEMOS[:3], "biomedicine", items=2)
    assert p.stop == ("6. Instruction", "7. Instruction", "Output:")
    one = brainstorm_prompt("r0-p0", DEMOS[:3], "biomedicine", items=1).stop
    assert one == ("###", "Instruction:", "Instructions:", "Output:")  # a repeated or drifting number ends it too
    assert parse(" Define apoptosis.\n4. Input:\nCaspases.\n##4. ") == [
        {"instruction": "Define apoptosis.", "input": "Caspases."}
    ]
    # what a generation stopped by them leaves is parsed completely
    completion = (
        " Name a statin.\n4. Input:\n<noinput>\n###\n5. Instruction: Define apoptosis.\n5. Input:\n<noinput>\n###\n"
    )
    assert parse(completion) == [
        {"instruction": "Name a statin.", "input": ""},
        {"instruction": "Define apoptosis.", "input": ""},
    ]
    # "Output:" stopped it right after the instruction: the dangling "4." is not part of the instruction
    assert parse(" Name the enzyme that unwinds DNA.\n4. ") == [
        {"instruction": "Name the enzyme that unwinds DNA.", "input": ""}
    ]


def test_response_prompt_both_renderings():
    item = {"instruction": "Define anemia.", "input": ""}
    p = response_prompt("x", item, DEMOS, "biomedicine")
    assert p.text.count("### Response:") == 6 and p.text.endswith("### Response:\n")
    assert "Out 4" in p.text and p.stop == ("###",)
    roles = [m["role"] for m in p.messages]
    assert roles == ["system"] + ["user", "assistant"] * 5 + ["user"]
    assert "Define anemia." in p.messages[-1]["content"]


def test_the_brainstorm_grammar_admits_a_complete_list_and_nothing_that_runs_away():
    import re

    demos = [{"instruction": "Name the gene.", "input": "TP53 is mutated."}] * 3
    prompt = brainstorm_prompt("r0-p0", demos, "biomedicine", items=2, max_tokens=192)
    grammar = re.compile(prompt.pattern)
    good = " Explain insulin.\n4. Input:\n<noinput>\n###\n5. Instruction: List two genes.\n5. Input:\nTP53, BRCA1.\n###"
    assert grammar.fullmatch(good) and parse_brainstorm(prompt.prefix, good, truncated=False)[1]["input"]
    assert not grammar.fullmatch(" Explain insulin.\n4. Input:\n" + "insulin " * 200 + "\n###")  # runaway: bounded
    assert not grammar.fullmatch(" Explain insulin.\n4. Input:\n<noinput>\n5. Instruction: x\n###")  # not item 5
    assert not grammar.fullmatch(" - explain insulin\n4. Input:\n<noinput>\n###")  # starts with punctuation
    assert not grammar.fullmatch(" Explain insulin.\n4. Output:\nIt lowers glucose.\n###")  # no input field
    # the bounds (in words) fit the token cap at ~1.5 tokens a word, whatever the number of items
    for items, cap in ((1, 192), (2, 192), (2, 320)):
        pattern = brainstorm_prompt("r0-p0", demos, "biomedicine", items=items, max_tokens=cap).pattern
        bounds = [int(n) for n in re.findall(r"\{\d+,(\d+)\}", pattern)]
        assert len(bounds) == 2 * items and (sum(bounds) + 2 * items) * 1.5 + 6 * items <= cap
    assert brainstorm_prompt("r0-p0", demos, "biomedicine", items=2).pattern == ""  # no grammar without a cap
