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


def test_parse_items_noinput_and_drop_truncated_tail():
    completion = (
        " Name the gene mutated in cystic fibrosis.\n4. Input:\n<noinput>\n"
        "###\n5. Instruction: Classify the abstract by study design.\n5. Input:\nWe enrolled 30 patients.\n"
        "###\n6. Instruction: List the"
    )
    items = parse_brainstorm("###\n4. Instruction:", completion, truncated=True)
    assert items[0] == {"instruction": "Name the gene mutated in cystic fibrosis.", "input": ""}
    assert items[1] == {"instruction": "Classify the abstract by study design.", "input": "We enrolled 30 patients."}
    assert items[2]["rejected"] == "truncated"
    # without truncation the same tail is simply unparseable (no Input field)
    assert parse_brainstorm("###\n4. Instruction:", completion, truncated=False)[2]["rejected"] == "unparseable"


def test_parse_rejects_garbage():
    assert parse_brainstorm("", "Sure! Here are some tasks.", truncated=False) == [
        {"rejected": "unparseable", "raw": "Sure! Here are some tasks."}
    ]


def test_response_prompt_both_renderings():
    item = {"instruction": "Define anemia.", "input": ""}
    p = response_prompt("x", item, DEMOS, "biomedicine")
    assert p.text.count("### Response:") == 6 and p.text.endswith("### Response:\n")
    assert "Out 4" in p.text and p.stop == ("###",)
    roles = [m["role"] for m in p.messages]
    assert roles == ["system"] + ["user", "assistant"] * 5 + ["user"]
    assert "Define anemia." in p.messages[-1]["content"]
