"""Generation backends. They know prompts and sampling, never the pipeline."""

from .base import Completion, Sampling, item_seed, render

__all__ = ["Completion", "Sampling", "item_seed", "render"]
