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
    # Every recipe in recipes/ is one RECIPES validates (a new one is picked up by the glob), and the ones the
    # README and docs name are among them.
    named = {"smoke-cpu.yml", "biomed.yml", "finance.yml", "gemma-biomed.yml", "contracts-cpu.yml"}
    assert named <= {p.name for p in RECIPES}
    assert all(p.is_file() for p in RECIPES), [p for p in RECIPES if not p.is_file()]


def test_a_recipe_without_output_dir_has_one_run_for_selfspec_generate_and_axolotl(tmp_path, monkeypatch):
    """Regression: `make_job` put the runs of a recipe without `output_dir` under ./selfspec, Axolotl under its own
    default (./model-out): `selfspec generate` and `axolotl preprocess`/`train` then pointed at two run folders, and
    training generated again the data that was cached. Axolotl's default is read from Axolotl itself here."""
    from axolotl.cli.config import prepare_plugins
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    from selfspec_plugin.axolotl_plugin import selfspec_block
    from selfspec_plugin.cli import recipe_job
    from selfspec_plugin.runner import make_job

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "seeds.jsonl").write_text('{"instruction": "Name it.", "output": "x"}\n')
    raw = yaml.safe_load((ROOT / "recipes" / "smoke-cpu.yml").read_text())
    raw = {k: v for k, v in raw.items() if k not in ("output_dir", "dataset_prepared_path")}
    raw["base_model"] = str(tmp_path / "model")
    raw["selfspec"] = {"seeds": "seeds.jsonl", "num_instructions": 4}
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)

    _, job = recipe_job(str(recipe))  # `selfspec generate RECIPE`
    cfg = DictDefault(copy.deepcopy(raw))  # what the plugin's load_datasets gets under `axolotl preprocess`
    prepare_plugins(cfg)
    cfg = DictDefault(validate_config(cfg, *CPU))
    cfg.axolotl_config_path = str(recipe)
    assert cfg.output_dir  # Axolotl filled in its default
    plugin_job = make_job(selfspec_block(cfg), cfg.base_model, cfg.output_dir, cfg.axolotl_config_path)
    assert plugin_job.runs_dir.resolve() == job.runs_dir.resolve() == (tmp_path / cfg.output_dir / "selfspec").resolve()
    assert plugin_job.dir.resolve() == job.dir.resolve()


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


def test_the_gemma_experiments_recipe_still_names_the_run_its_data_was_generated_in(monkeypatch):
    """Issue 30's generation takes CPU sessions in one run folder, 6be3a464f4b812f4 (its inputs.json is in
    docs/results/gemma/): a change to the recipe, the seeds, the corpus, the prompts, the filters or the run key's
    code that gives the recipe another key would start the generation over. The model's fingerprint is the
    committed one (the converted weights are not in a checkout)."""
    import json

    from selfspec_plugin import rundirs
    from selfspec_plugin.runner import make_job

    committed = json.loads((ROOT / "docs" / "results" / "gemma" / "inputs.json").read_text())
    monkeypatch.setattr(rundirs, "model_fingerprint", lambda model: committed["model"])
    raw = load(ROOT / "recipes" / "gemma-biomed.yml")
    job = make_job(raw["selfspec"], raw["base_model"], raw["output_dir"], str(ROOT / "recipes" / "gemma-biomed.yml"))
    assert job.key == "6be3a464f4b812f4"
    assert rundirs.identity(job.inputs) == rundirs.identity(committed)
