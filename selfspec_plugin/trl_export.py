"""`selfspec export-trl`: the same recipe, trained by TRL's own `trl sft` instead of Axolotl.

The run is generated or reused exactly as `axolotl train` would; then DIR/train.jsonl holds its triplets in a
format TRL trains on with the loss on the response only (prompt/completion: conversational for a chat-trained
run, the Alpaca template otherwise), and DIR/sft.yaml maps the recipe's model, QLoRA and trainer settings to
TRL's names. Settings with no TRL equivalent are listed at the top of sft.yaml, never dropped silently.
"""

from __future__ import annotations

from pathlib import Path

from . import fileio
from .dataset import DATA, Manifest
from .prompts import alpaca_prompt

# Axolotl key -> TRL (`trl sft` config) key, value unchanged.
SAME = {
    "base_model": "model_name_or_path",
    "load_in_4bit": "load_in_4bit",
    "load_in_8bit": "load_in_8bit",
    "lora_r": "lora_r",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "lora_target_modules": "lora_target_modules",
    "lora_modules_to_save": "lora_modules_to_save",
    "peft_use_rslora": "use_rslora",
    "peft_use_dora": "use_dora",
    "learning_rate": "learning_rate",
    "optimizer": "optim",
    "lr_scheduler": "lr_scheduler_type",
    "warmup_steps": "warmup_steps",
    "warmup_ratio": "warmup_steps",  # transformers 5: a warmup_steps below 1 is a ratio of the total steps
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "micro_batch_size": "per_device_train_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "num_epochs": "num_train_epochs",
    "max_steps": "max_steps",
    "sequence_len": "max_length",
    "sample_packing": "packing",
    "gradient_checkpointing": "gradient_checkpointing",
    "fp16": "fp16",
    "tf32": "tf32",
    "attn_implementation": "attn_implementation",
    "seed": "seed",
    "logging_steps": "logging_steps",
    "save_strategy": "save_strategy",
    "save_steps": "save_steps",
    "dataset_num_proc": "dataset_num_proc",
}
# Axolotl keys mapped with a rule (see `mapped`).
RULES = (
    "adapter",
    "lora_target_linear",
    "train_on_inputs",
    "bf16",
    "flash_attention",
    "sdp_attention",
    "output_dir",
)
# Axolotl keys with no TRL equivalent: why, for the comment at the top of sft.yaml.
UNMAPPED = {
    "val_set_size": "no held-out split is made; TRL's eval_strategy stays 'no'",
    "dataset_prepared_path": "Axolotl's tokenised-dataset cache; TRL tokenises at start",
    "lora_mlp_kernel": "Axolotl's Triton LoRA kernels",
    "lora_qkv_kernel": "Axolotl's Triton LoRA kernels",
    "lora_o_kernel": "Axolotl's Triton LoRA kernels",
    "lora_embedding_kernel": "Axolotl's Triton LoRA kernels",
}
CONSUMED = ("plugins", "selfspec", "datasets")  # selfspec's own: they become the dataset


def _mapped(key: str, value) -> dict:
    """The TRL settings for one Axolotl setting that needs a rule."""
    if key == "adapter":
        quantized = {"bnb_4bit_quant_type": "nf4", "use_bnb_nested_quant": True} if value == "qlora" else {}
        return {"use_peft": value in ("lora", "qlora"), **quantized}  # Axolotl's qlora: NF4 with double quantisation
    if key == "lora_target_linear":
        return {"lora_target_modules": "all-linear"} if value else {}
    if key == "train_on_inputs":  # prompt/completion data: the loss on the completion unless inputs are trained on
        return {"completion_only_loss": not value}
    if key == "bf16":
        return {"bf16": value} if isinstance(value, bool) else {}  # "auto": TRL's own default (bf16 where supported)
    if key == "output_dir":  # beside the Axolotl adapter, not onto it: `trl sft` would overwrite that adapter
        return {"output_dir": trl_output_dir(value)} if value else {}
    if key == "flash_attention":
        return {"attn_implementation": "flash_attention_2"} if value else {}
    return {"attn_implementation": "sdpa"} if value else {}  # sdp_attention


def trl_output_dir(output_dir: str) -> str:
    """TRL's output_dir for a recipe whose Axolotl adapter goes to `output_dir`: a sibling folder."""
    path = Path(output_dir)
    path = path if path.name else path.absolute()  # "." has no name to extend
    return str(path.parent / f"{path.name}-trl")


def trl_config(raw: dict, data: Path) -> tuple[dict, dict]:
    """(the `trl sft` config, {Axolotl key: why it is not mapped}) for an Axolotl recipe whose training data is
    `data`. Keys the exporter does not know are reported as unmapped too."""
    config: dict = {
        "datasets": [{"path": "json", "data_files": str(data), "split": "train"}],
        "dataset_train_split": "train",
        "completion_only_loss": True,
    }
    unmapped: dict[str, str] = {}
    for key, value in raw.items():
        if key in SAME:
            if value is not None:
                config[SAME[key]] = value
        elif key in RULES:
            config.update(_mapped(key, value))
        elif key in UNMAPPED:
            unmapped[key] = UNMAPPED[key]
        elif key not in CONSUMED:
            unmapped[key] = "not known to selfspec's exporter: set its TRL equivalent by hand"
    return config, unmapped


def trl_rows(rows: list[dict], chat: bool) -> list[dict]:
    """Triplets as TRL prompt/completion records: chat turns for a chat-trained run, the Alpaca template otherwise."""
    if chat:
        return [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows]
    return [{"prompt": alpaca_prompt(r["instruction"], r["input"]), "completion": r["output"]} for r in rows]


def export_trl(raw: dict, run_dir: Path, out: Path) -> Path:
    """Write OUT/train.jsonl and OUT/sft.yaml for a finished run of the recipe `raw`; returns sft.yaml's path."""
    import yaml  # (here: `selfspec --help` does not load it)

    manifest = Manifest.load(run_dir)
    chat = manifest.prompt_format == "chat"
    data = out.resolve() / "train.jsonl"
    fileio.write_jsonl(data, trl_rows(fileio.read_jsonl(run_dir / DATA), chat))
    config, unmapped = trl_config(raw, data)
    head = [
        f"# `trl sft --config {out / 'sft.yaml'}`: written by `selfspec export-trl` from run {run_dir}",
        f"# ({manifest.counts['triplets']} triplets, {'chat' if chat else 'Alpaca'} prompts; loss on the completion).",
        "# Recipe settings with no TRL equivalent (not applied):" if unmapped else "# Every recipe setting is mapped.",
    ]
    if "output_dir" in config:
        head.insert(
            2, f"# output_dir: beside the Axolotl adapter ({raw['output_dir']}), so that neither overwrites the other."
        )
    head += [f"#   {key}: {raw[key]!r} -- {why}" for key, why in unmapped.items()]
    path = out / "sft.yaml"
    fileio.write_text(path, "\n".join(head) + "\n" + yaml.safe_dump(config, sort_keys=False))
    return path
