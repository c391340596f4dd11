"""Generation backends. They know prompts and sampling, never the pipeline."""

from .base import Completion, Sampling, adapter_rank, chat_model, item_seed, lora_options, render

__all__ = ["Completion", "Sampling", "adapter_rank", "chat_model", "item_seed", "lora_options", "render"]
