"""Generation backends. They know prompts and sampling, never the pipeline."""

from .base import Completion, Sampling, adapter_rank, chat_model, item_seed, render, serves_adapters, start_options

__all__ = [
    "Completion",
    "Sampling",
    "adapter_rank",
    "chat_model",
    "item_seed",
    "render",
    "serves_adapters",
    "start_options",
]
