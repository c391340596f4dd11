import json

import pytest
from conftest import ROOT

from selfspec_plugin.errors import SelfSpecError
from selfspec_plugin.seeds import load_seeds

GOOD = json.dumps({"id": "a", "instruction": "Name the enzyme.", "input": "", "output": "lipase"})


def test_shipped_biomed_seeds_load():
    seeds = load_seeds(ROOT / "seeds" / "biomed.jsonl")
    assert len(seeds) >= 10
    assert len({s["id"] for s in seeds}) == len(seeds)
    assert all(s["instruction"] and s["output"] and s["task_type"] for s in seeds)


def test_defaults_fill_id_and_input(write_seeds):
    path = write_seeds([json.dumps({"instruction": "Define apoptosis.", "output": "Programmed cell death."})])
    assert load_seeds(path) == [
        {
            "id": "seed-1",
            "task_type": "",
            "instruction": "Define apoptosis.",
            "input": "",
            "output": "Programmed cell death.",
        }
    ]


@pytest.mark.parametrize(
    "bad, expected",
    [
        ("{not json", ":2: not valid JSON"),
        (json.dumps({"instruction": "x"}), ":2: missing field 'output'"),
        (json.dumps({"instruction": 3, "output": "y"}), ":2: field 'instruction' must be a string"),
        (json.dumps({"instruction": "  ", "output": "y"}), ":2: field 'instruction' is empty"),
        (json.dumps({"instruction": "x", "output": "y", "outptu": "z"}), ":2: unknown field 'outptu'"),
        (json.dumps({"id": "a", "instruction": "x", "output": "y"}), ":2: duplicate id 'a' (first on line 1)"),
        (json.dumps(["x"]), ":2: expected a JSON object, got list"),
    ],
)
def test_bad_lines_name_file_line_and_field(write_seeds, bad, expected):
    path = write_seeds([GOOD, bad])
    with pytest.raises(SelfSpecError) as err:
        load_seeds(path)
    assert f"{path}{expected}" in str(err.value)


def test_empty_and_missing_files(write_seeds, tmp_path):
    with pytest.raises(SelfSpecError, match="no seed tasks"):
        load_seeds(write_seeds(["", "  "]))
    with pytest.raises(SelfSpecError, match="not found"):
        load_seeds(tmp_path / "nope.jsonl")


def test_seeds_check_reports_near_duplicates_and_balance(write_seeds):
    from selfspec_plugin.seeds import check_seeds

    lines = [
        json.dumps(
            {"id": f"s{i}", "task_type": "qa", "instruction": f"Question number {i} about cells?", "output": "x"}
        )
        for i in range(6)
    ]
    lines.append(
        json.dumps(
            {"id": "near", "task_type": "qa", "instruction": "Question number 1 about the cells?", "output": "y"}
        )
    )
    lines.append(
        json.dumps(
            {"id": "rare", "task_type": "ner", "instruction": "Extract the genes.", "input": "TP53", "output": "TP53"}
        )
    )
    lines.append(
        json.dumps(
            {"id": "dup", "task_type": "ner", "instruction": "Extract the genes.", "input": "TP53", "output": "TP53"}
        )
    )
    errors, warnings, types = check_seeds(write_seeds(lines))
    assert len(errors) == 1 and "'dup' repeats the instruction and input of 'rare'" in errors[0]
    assert any("'near'" in w and "ROUGE-L" in w for w in warnings)
    assert types == {"ner": 2, "qa": 7}
    assert any("'qa' holds 7 of 9 seeds" in w for w in warnings)


def test_seeds_check_cli_exit_codes(write_seeds, capsys):
    from selfspec_plugin.cli import main

    assert main(["seeds", "check", str(ROOT / "seeds" / "biomed.jsonl")]) == 0
    broken = write_seeds([GOOD, '{"instruction": "x", "output": 5}'])
    assert main(["seeds", "check", str(broken)]) == 2
    assert f"{broken}:2: field 'output' must be a string" in capsys.readouterr().err


def test_yaml_seeds_with_line_numbers(write_seeds):
    path = write_seeds(
        [
            "- instruction: Define sepsis.",
            "  output: A dysregulated host response to infection.",
            "- id: b",
            "  instruction: Name the vector of malaria.",
            "  input: ''",
            "  output: Anopheles mosquito",
        ],
        name="seeds.yaml",
    )
    seeds = load_seeds(path)
    assert [s["id"] for s in seeds] == ["seed-1", "b"] and seeds[1]["output"] == "Anopheles mosquito"
    bad = write_seeds(
        ["- instruction: Define sepsis.", "  output: x", "- instruction: Name it.", "  outputs: y"], name="bad.yaml"
    )
    with pytest.raises(SelfSpecError) as err:  # the key's own line; the missing field: where its item starts
        load_seeds(bad)
    assert str(err.value).splitlines() == [
        f"{bad}:4: unknown field 'outputs' (allowed: id, task_type, input, instruction, output)",
        f"{bad}:3: missing field 'output'",
    ]


def test_seeds_check_against_held_out_flags_a_planted_near_copy(write_seeds, tmp_path, capsys):
    from selfspec_plugin.cli import main

    task = {
        "task": "qa",
        "definition": "Answer.",
        "demos": [],
        "instances": [
            {"input": "Which enzyme unwinds the DNA double helix ahead of the replication fork?", "output": "helicase"},
            {"input": "The trial met its primary endpoint of overall survival at 24 months.", "output": "positive"},
        ],
    }
    held_out = tmp_path / "eval.jsonl"
    held_out.write_text(json.dumps(task) + "\n")
    seeds = write_seeds(
        [
            GOOD,
            json.dumps(
                {
                    "id": "copy",
                    "instruction": "Label it.",
                    "output": "positive",
                    "input": "The trial met its primary endpoint of survival at 24 months.",
                }
            ),
        ]
    )
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps(d)
            for d in [
                {
                    "id": "leak",
                    "text": "Helicase is the enzyme that unwinds the DNA double helix ahead of the replication fork.",
                },
                {"id": "fine", "text": "Helicases are motor proteins; topoisomerases relieve the strain they create."},
            ]
        )
        + "\n"
    )
    args = ["seeds", "check", str(seeds), "--against", str(held_out), "--corpus", str(corpus)]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "seed 'copy': input has ROUGE-L 0.96 > 0.7 with held-out qa instance 1" in err
    assert "corpus document 'leak': holds the answer 'helicase' of held-out qa instance 0" in err
    assert "'a'" not in err and "'fine'" not in err
    assert main([*args, "--threshold", "0.99", "--overlap", "0.99"]) == 0  # the thresholds are the user's
    capsys.readouterr()
    spec = f"pubmedqa:{tmp_path / 'pubmedqa'}"  # two specs after one --against: the second is read as a seed file
    assert main(["seeds", "check", str(seeds), "--against", str(held_out), spec]) == 2
    err = capsys.readouterr().err
    assert f"{spec}: not a seed file (not found); each held-out spec takes its own --against: " in err
    assert f"--against {held_out} --against {spec}" in err


def test_shipped_seeds_and_corpora_are_clear_of_their_held_out_tasks():
    from selfspec_plugin.cli import main

    for domain in ("biomed", "finance"):
        assert (
            main(
                [
                    "seeds",
                    "check",
                    str(ROOT / "seeds" / f"{domain}.jsonl"),
                    "--against",
                    str(ROOT / "seeds" / "eval" / f"{domain}.jsonl"),
                    "--corpus",
                    str(ROOT / "seeds" / "corpus" / f"{domain}-sample.jsonl"),
                ]
            )
            == 0
        ), domain
