"""selfspec's extension points (pluggy). Third-party packages implement them and expose the module under
the `selfspec` entry-point group; the built-ins are registered through the very same hooks."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("selfspec")
hookimpl = pluggy.HookimplMarker("selfspec")


@hookspec
def register_backends(register):
    """Register generation backends: `register(name, factory)`; `factory(model, options)` returns an object with
    `generate(prompts, sampling, prompt_format, adapter=None) -> list[Completion]` and `close()`. Subclassing
    `selfspec_plugin.backends.base.Backend` declares its abilities and options (class attributes with defaults:
    `chat_capable`, `chat_model`, `serves_adapters`, `Options`, `not_output`, ...); a factory that does not subclass
    gets the same defaults. `selfspec eval` and `selfspec iterate` call `generate(..., adapter=DIR)`."""


@hookspec
def register_retrievers(register):
    """Register retrievers: `register(name, factory)`; `factory(docs, cache_dir)` returns an object with
    `search(queries, k) -> list[list[{id, text, score}]]`."""


@hookspec
def register_filters(register):
    """Register filters: `register(FilterSpec(name, stage, build, order))`."""


@hookspec
def register_tasks(register):
    """Register eval task loaders: `register(name, loader)`; the spec `NAME:PATH` (`selfspec eval --tasks`,
    `selfspec.eval.tasks`) calls `loader(Path(PATH))`, which returns a `selfspec_plugin.eval.Task` (or a list)."""


@hookspec(firstresult=True)
def check_job(job):
    """Validate a `Job`'s inputs before any engine starts or anything is written: raise `SelfSpecError` naming the
    file:line or `selfspec.` field; return True when checked (the first non-None result wins, so a pipeline that
    replaces `generate_dataset` can check its own inputs). The built-in checks the backend, retriever and filter
    names, the backend's options, the seeds and the corpus."""


@hookspec(firstresult=True)
def generate_dataset(job, backend, progress):
    """Generate a `Job`'s data with an open backend (None for `seeds_only`: no engine is started; resuming from the
    run directory `job.dir` is the implementation's business; `job.begin()` starts the folder) and return a
    `selfspec_plugin.dataset.Generated`: the training triplets, the rejected items with their reasons, the kept
    instructions and a `dataset.Manifest` (`run_key` = `job.key`). The runner checks it and writes data.jsonl,
    rejected.jsonl, instructions.jsonl, the dataset card and manifest.json (last). The first non-None result wins;
    the built-in is the self-specialization pipeline."""
