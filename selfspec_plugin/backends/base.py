"""What every backend shares: sampling settings, per-item seeds, completions and prompt rendering."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import SelfSpecError


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int
    seed: int  # the run seed; each request gets item_seed(seed, prompt.id)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" or "length"
    tokens: int


def item_seed(run_seed: int, item_id: str) -> int:
    """A request's sampling seed: stable across runs, processes and machines."""
    digest = hashlib.sha256(f"{run_seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def render(prompt, mode: str, tokenizer) -> str:
    """Completion mode: the plain text. Chat mode: the chat template, then the assistant prefix."""
    if mode == "completion":
        return prompt.text
    chat = tokenizer.apply_chat_template(list(prompt.messages), tokenize=False, add_generation_prompt=True)
    return chat + prompt.prefix


VLLM_ENGINES = ("vllm", "ray")  # backends built on vLLM: they take the `vllm:` settings and serve LoRA per request


def adapter_rank(adapter: str | Path) -> int:
    """The LoRA rank of a PEFT adapter directory."""
    try:
        return int(json.loads((Path(adapter) / "adapter_config.json").read_text())["r"])
    except (OSError, ValueError, KeyError) as exc:
        raise SelfSpecError(f"{adapter}: not a PEFT LoRA adapter directory ({exc})") from None


def lora_options(backend_name: str, options: dict, adapter: str) -> dict:
    """A backend's start options for serving `adapter` per request: vLLM must enable LoRA when it starts."""
    if backend_name not in VLLM_ENGINES:
        return options
    return {**options, "enable_lora": True, "max_lora_rank": max(8, adapter_rank(adapter)), "max_loras": 1}
