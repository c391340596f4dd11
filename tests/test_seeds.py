import json

import pytest

from selfspec_plugin.errors import SelfSpecError
from selfspec_plugin.seeds import load_seeds

from conftest import ROOT

GOOD = json.dumps({"id": "a", "instruction": "Name the enzyme.", "input": "", "output": "lipase"})


def test_shipped_biomed_seeds_load():
    seeds = load_seeds(ROOT / "seeds" / "biomed.jsonl")
    assert len(seeds) >= 10
    assert len({s["id"] for s in seeds}) == len(seeds)
    assert all(s["instruction"] and s["output"] and s["task_type"] for s in seeds)


def test_defaults_fill_id_and_input(write_seeds):
    path = write_seeds([json.dumps({"instruction": "Define apoptosis.", "output": "Programmed cell death."})])
    assert load_seeds(path) == [
        {"id": "seed-1", "task_type": "", "instruction": "Define apoptosis.", "input": "", "output": "Programmed cell death."}
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
        (json.dumps(["x"]), ":2: a seed must be a JSON object"),
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
