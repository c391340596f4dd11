"""Every recipe in recipes/ passes Axolotl's own config validation with the plugin, keeps every key it
sets (a typo would be dropped silently), and points at files that exist."""

import copy
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from selfspec_plugin.config import SelfSpecConfig
from selfspec_plugin.recipe import load

RECIPES = sorted((ROOT / "recipes").glob("*.yml")) + [
    ROOT / "benchmarks" / "specialize_smollm2.yml",  # the experiment
    ROOT / "recipes" / "examples" / "contracts-cpu.yml",  # README "A new domain, end to end"
]
CPU = (
    {"bf16": False, "fp8": False, "tf32": False, "n_gpu": 1, "compute_capability": None},
    {"torch_version": "2.13.0"},
)
GPU = (
    {"bf16": True, "fp8": False, "tf32": True, "n_gpu": 1, "compute_capability": "sm_90"},
    {"torch_version": "2.13.0"},
)


def test_the_recipes_are_there():
    assert {"smoke-cpu.yml", "biomed.yml", "finance.yml"} <= {p.name for p in RECIPES}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_validates_with_axolotl(recipe, monkeypatch):
    from axolotl.cli.config import prepare_plugins
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    monkeypatch.chdir(ROOT)
    raw = yaml.safe_load(recipe.read_text())
    cfg = DictDefault(copy.deepcopy(raw))
    prepare_plugins(cfg)
    validated = validate_config(
        cfg, *(CPU if "cpu" in recipe.name or recipe.parent.name == "benchmarks" or raw.get("bf16") is False else GPU)
    )
    assert sorted(set(raw) - set(validated)) == []
    monkeypatch.chdir("/")  # selfspec's input paths are relative to the recipe: found from any directory
    block = SelfSpecConfig(**load(recipe)["selfspec"])
    assert Path(block.seeds).is_file()
    assert block.corpus is None or Path(block.corpus).is_file()
    assert validated["adapter"] == "qlora" and validated["load_in_4bit"] is True
    assert (validated["lora_r"], validated["lora_alpha"], validated["learning_rate"]) == (8, 16, 0.0003)


def test_the_new_domain_example_has_clean_seeds_and_loadable_held_out_tasks():
    """README's worked example: its seeds check without errors (only the few-seeds warning) and its held-out file
    loads as `selfspec eval --task` reads it."""
    from selfspec_plugin.eval import load_tasks
    from selfspec_plugin.seeds import check_seeds

    examples = ROOT / "recipes" / "examples"
    errors, warnings, types = check_seeds(str(examples / "contracts.jsonl"), 0.7)
    assert errors == [] and len(warnings) == 1 and "below the paper's range" in warnings[0]
    assert sum(types.values()) == 14
    tasks = load_tasks(str(examples / "contracts-heldout.jsonl"))
    assert [(t.name, t.kind, len(t.instances)) for t in tasks] == [
        ("clause_type", "labels", 6),
        ("clause_yes_no", "labels", 4),
    ]


def test_recipe_check_says_how_many_steps_a_matched_control_will_take(tmp_path):
    """`match_steps_of`: the steps its marker records, or why they are not known (yet) — before any training."""
    import json

    from selfspec_plugin.recipe import _size, _steps_lines

    arm = tmp_path / "selfspec-s1"
    assert _steps_lines(str(arm))[0][0] == "warn" and "train that adapter first" in _steps_lines(str(arm))[0][1]
    arm.mkdir()
    (arm / "selfspec-trained.json").write_text(json.dumps({"config_sha256": "x"}))  # written before steps were kept
    assert "records no optimizer steps" in _steps_lines(str(arm))[0][1]
    (arm / "selfspec-trained.json").write_text(json.dumps({"optimizer_steps": 130}))
    assert _steps_lines(str(arm)) == [
        ("ok", f"match_steps_of: {arm} trained 130 optimizer steps; this run takes as many")
    ]
    assert _steps_lines(None) == []
    assert _size(SelfSpecConfig(seeds="s.jsonl", seeds_only=True)).startswith("seeds only:")
