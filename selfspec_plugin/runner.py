"""Owns a generation run: cache lookup, the backend's lifetime, the `generate_dataset` hook, the child process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import dataset, fileio, registry, rundirs
from .backends import start_options
from .config import SelfSpecConfig
from .errors import SelfSpecError
from .report import summary


def make_job(block: dict, base_model: str | None, output_dir: str | None, recipe: str | None = None) -> rundirs.Job:
    """Resolve a `selfspec:` block plus the surrounding Axolotl config into a Job (`recipe`: the file it came from,
    recorded in the manifest)."""
    from .recipe import provenance

    config = block if isinstance(block, SelfSpecConfig) else SelfSpecConfig(**block)
    model = config.model or base_model
    if not model:
        raise SelfSpecError("selfspec.model: no generator model (set selfspec.model or base_model)")
    runs_dir = Path(config.runs_dir or Path(output_dir or ".") / "selfspec")
    return rundirs.Job(config, str(model), runs_dir, provenance(recipe) if recipe and Path(recipe).is_file() else None)


# Set by torchrun/accelerate for the training ranks. The generator (and eval) child is one standalone process:
# vLLM must not mistake it for a rank of the training job.
LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE",
                "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT",
                "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_USE_AGENT_STORE", "TORCH_NCCL_ASYNC_ERROR_HANDLING")


def child_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV and not k.startswith("ACCELERATE_")}


def _cached(run_dir: Path) -> bool:
    if rundirs.is_complete(run_dir):
        print(f"selfspec: reusing cached run {run_dir}", file=sys.stderr)
        return True
    return False


def check_job(job: rundirs.Job) -> None:
    """The `check_job` hook: bad names, options, seeds or corpus stop here, before an engine starts or anything
    is written."""
    registry.get_plugin_manager().hook.check_job(job=job)


def generate(job: rundirs.Job, progress: bool = True) -> Path:
    """Run the job in this process (or reuse its finished run); returns the run directory."""
    run_dir = job.dir
    if _cached(run_dir):
        return run_dir
    cfg = job.config
    check_job(job)
    with rundirs.writer_lock(run_dir):  # concurrent runs (or ranks) of one job: one generates, the rest wait
        if _cached(run_dir):
            return run_dir
        if cfg.seeds_only:  # the control: the seeds are the data, no engine
            from .pipeline import seeds_only_run

            result = seeds_only_run(job)
        else:
            adapters = [cfg.previous_round.adapter] if cfg.previous_round else []  # an iterative round: base + adapter
            factory = registry.backend(cfg.backend)
            backend = factory(job.model, start_options(cfg.backend, factory, cfg.backend_settings(), adapters))
            try:
                result = registry.get_plugin_manager().hook.generate_dataset(job=job, backend=backend, progress=progress)
            finally:
                backend.close()
        manifest = dataset.write(run_dir, dataset.check(result, job), cfg.messages)
    print(summary(manifest, run_dir), file=sys.stderr)
    return run_dir


def generate_in_child(job: rundirs.Job) -> Path:
    """Run the job in a child Python process, so the engine's memory (GPU too) is gone when it returns."""
    run_dir = job.dir
    if _cached(run_dir):
        return run_dir
    check_job(job)  # a bad name or file: fail here, before the runs folder is made
    fileio.make_dir(job.runs_dir)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=job.runs_dir, delete=False) as fh:
        fh.write(job.to_json())
    try:
        proc = subprocess.run([sys.executable, "-m", "selfspec_plugin.cli", "run-job", fh.name], env=child_env())
    finally:
        os.unlink(fh.name)
    if proc.returncode != 0:
        raise SelfSpecError(f"selfspec: generation failed (exit code {proc.returncode}); see the messages above")
    return run_dir


def evaluate_in_child(job: rundirs.Job, adapter: str) -> dict:
    """`selfspec eval` on a trained adapter in a child process (its engine's memory is gone when it returns)."""
    recipe = Path(adapter) / "selfspec-eval.json"  # JSON is YAML: the CLI reads it like any recipe
    fileio.write_json(recipe, {"base_model": job.model, "output_dir": str(adapter),
                              "selfspec": job.config.model_dump(mode="json")})
    proc = subprocess.run([sys.executable, "-m", "selfspec_plugin.cli", "eval", str(recipe), "--adapter", f"adapter={adapter}"],
                          env=child_env())
    if proc.returncode != 0:
        raise SelfSpecError(f"selfspec: evaluation failed (exit code {proc.returncode}); see the messages above")
    return fileio.read_json(Path(adapter) / "eval" / "eval.json")
