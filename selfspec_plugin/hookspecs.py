"""selfspec's extension points (pluggy). Third-party packages implement them and expose the module under
the `selfspec` entry-point group; the built-ins are registered through the very same hooks."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("selfspec")
hookimpl = pluggy.HookimplMarker("selfspec")


@hookspec
def register_backends(register):
    """Register generation backends: `register(name, factory)`; `factory(model, options)` returns an
    object with `chat_capable` (the tokenizer has a chat template), optionally `chat_model` (the model was trained
    to chat: `backends.chat_model`; `prompt_format: auto` uses it, default `chat_capable`),
    `generate(prompts, sampling, mode) -> list[Completion]` and `close()`.
    `selfspec eval` and `selfspec iterate` also call `generate(..., adapter=DIR)` to apply a LoRA adapter."""


@hookspec
def register_retrievers(register):
    """Register retrievers: `register(name, factory)`; `factory(docs, cache_dir)` returns an object with
    `search(queries, k) -> list[list[{id, text, score}]]`."""


@hookspec
def register_filters(register):
    """Register filters: `register(FilterSpec(name, stage, build, order))`."""


@hookspec(firstresult=True)
def generate_dataset(job, backend, progress):
    """Produce the run's records from a `Job` with an open backend; the first non-None result wins.
    The built-in implementation is the self-specialization pipeline."""
