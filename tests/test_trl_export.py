"""`selfspec export-trl`: every training setting of a shipped recipe reaches TRL under TRL's own name, or is listed
as not mapped (the trl sft run itself is in test_e2e.py)."""

import dataclasses

import pytest
import yaml
from conftest import ROOT

from selfspec_plugin.trl_export import trl_config, trl_rows


def trl_fields() -> set[str]:
    from trl import DatasetMixtureConfig, ModelConfig, ScriptArguments, SFTConfig

    return {
        f.name
        for cls in (ScriptArguments, SFTConfig, ModelConfig, DatasetMixtureConfig)
        for f in dataclasses.fields(cls)
    }


@pytest.mark.parametrize("name", ["biomed", "finance", "smoke-cpu"])
def test_every_recipe_key_is_mapped_or_listed(name, tmp_path):
    raw = yaml.safe_load((ROOT / "recipes" / f"{name}.yml").read_text())
    config, unmapped = trl_config(raw, tmp_path / "train.jsonl")
    unknown = {k: why for k, why in unmapped.items() if why.startswith("not known")}
    assert unknown == {}, f"map these keys in trl_export.py (SAME, RULES or UNMAPPED): {sorted(unknown)}"
    assert set(config) <= trl_fields(), set(config) - trl_fields()  # TRL's own names, or `trl sft` rejects them
    assert config["model_name_or_path"] == raw["base_model"] and config["use_peft"] is True
    assert (config["lora_r"], config["lora_alpha"], config["lora_dropout"]) == (
        raw["lora_r"],
        raw["lora_alpha"],
        raw["lora_dropout"],
    )
    assert config["lora_target_modules"] == "all-linear" and config["load_in_4bit"] is True
    assert (config["bnb_4bit_quant_type"], config["use_bnb_nested_quant"]) == ("nf4", True)  # Axolotl's qlora
    assert config["per_device_train_batch_size"] == raw["micro_batch_size"]
    assert config["gradient_accumulation_steps"] == raw["gradient_accumulation_steps"]
    assert config["num_train_epochs"] == raw["num_epochs"] and config["max_length"] == raw["sequence_len"]
    assert config["learning_rate"] == raw["learning_rate"] and config["optim"] == raw["optimizer"]
    assert config["lr_scheduler_type"] == raw["lr_scheduler"] and config["completion_only_loss"] is True


def test_a_new_recipe_key_is_reported_not_dropped(tmp_path):
    config, unmapped = trl_config(
        {"base_model": "m", "lora_r": 8, "neftune_noise_alpha": 5, "val_set_size": 0.1}, tmp_path / "t.jsonl"
    )
    assert "neftune_noise_alpha" in unmapped and unmapped["neftune_noise_alpha"].startswith("not known")
    assert unmapped["val_set_size"].startswith("no held-out split") and "neftune_noise_alpha" not in config


def test_rows_keep_the_loss_on_the_response():
    row = {
        "instruction": "Name the enzyme.",
        "input": "glycolysis",
        "output": "hexokinase",
        "messages": [
            {"role": "user", "content": "Name the enzyme.\n\nglycolysis"},
            {"role": "assistant", "content": "hexokinase"},
        ],
    }
    (chat,) = trl_rows([row], chat=True)
    assert chat == {"prompt": row["messages"][:1], "completion": row["messages"][1:]}
    (plain,) = trl_rows([row], chat=False)
    assert plain["completion"] == "hexokinase" and plain["prompt"].endswith("### Input:\nglycolysis\n\n### Response:\n")
    (bare,) = trl_rows([{**row, "input": ""}], chat=False)
    assert "### Input" not in bare["prompt"] and bare["prompt"].startswith(
        "Below is an instruction that describes a task. "
    )
