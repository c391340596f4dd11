"""Owns a generation run: the Job made from a recipe's block, cache lookup, the `check_job` and `generate_dataset`
hooks, the backend's lifetime, the result checked (dataset.check) and its files written, and the child processes.
The run layer: it imports neither the eval nor the report (what a run says of itself is funnel.py's)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import dataset, fileio, quiet, registry, rundirs
from .backends import start_options
from .config import SelfSpecConfig
from .dataset import CARD, DATA, INSTRUCTIONS, MANIFEST, REJECTED, Generated, Manifest, is_complete
from .errors import SelfSpecError
from .funnel import advice, dataset_card, funnel_text, poor_run, summary
from .prompts import as_messages
from .provenance import provenance

# Axolotl's own default output_dir (its config model's): a recipe without one keeps its runs where `axolotl train`
# and `axolotl preprocess` would, so `selfspec generate` and training share one run instead of generating twice.
AXOLOTL_OUTPUT_DIR = "./model-out"


def runs_dir(config: SelfSpecConfig, output_dir: str | None) -> Path:
    """Where a recipe's runs live: `selfspec.runs_dir`, else <output_dir>/selfspec with Axolotl's default."""
    return Path(config.runs_dir or Path(output_dir or AXOLOTL_OUTPUT_DIR) / "selfspec")


def make_job(block: dict, base_model: str | None, output_dir: str | None, recipe: str | None = None) -> rundirs.Job:
    """Resolve a `selfspec:` block plus the surrounding Axolotl config into a Job (`recipe`: the file it came from,
    recorded in the manifest)."""
    config = block if isinstance(block, SelfSpecConfig) else SelfSpecConfig(**block)
    model = config.model or base_model
    if not model:
        raise SelfSpecError("selfspec.model: no generator model (set selfspec.model or base_model)")
    return rundirs.Job(
        config,
        str(model),
        runs_dir(config, output_dir),
        provenance(recipe) if recipe and Path(recipe).is_file() else None,
    )


# Set by torchrun/accelerate for the training ranks. The generator (and eval) child is one standalone process:
# vLLM must not mistake it for a rank of the training job.
LAUNCHER_ENV = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
    "TORCHELASTIC_MAX_RESTARTS",
    "TORCHELASTIC_USE_AGENT_STORE",
    "TORCH_NCCL_ASYNC_ERROR_HANDLING",
)


def _launched(env) -> bool:
    """Started by `accelerate launch` (what `axolotl train` does): it marks its processes with ACCELERATE_*."""
    return any(k.startswith("ACCELERATE_") for k in env)


def child_env() -> dict:
    """This process's environment without the launcher's rank variables. Under `accelerate launch` that includes
    OMP_NUM_THREADS, which it sets for every rank (1 on CPU unless told otherwise): the generator would run vLLM
    on one core, at half the speed on 2 cores, and bf16 outputs depend on the thread count, so the same run key
    would hold other data than under `selfspec generate` (docs/benchmarks.md, B7)."""
    drop = LAUNCHER_ENV + (("OMP_NUM_THREADS",) if _launched(os.environ) else ())
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("ACCELERATE_")}


def training_threads(env, cores: int, cuda: bool) -> int | None:
    """Threads for a CPU training rank's torch, or None to leave them. `accelerate launch` gives every rank
    OMP_NUM_THREADS=1 on a CPU machine unless it was set (it would size it from the cores only with its `--cpu`
    flag, which `axolotl train` does not pass): a 2-core machine trained on one core (docs/benchmarks.md, B10).
    A rank launched so gets its share of the cores instead; a GPU rank, a thread count other than 1, or a process
    no launcher started keeps what it has."""
    if cuda or not _launched(env) or env.get("OMP_NUM_THREADS") != "1":
        return None
    share = cores // max(1, int(env.get("LOCAL_WORLD_SIZE", "1")))
    return share if share > 1 else None


def _cached(run_dir: Path, strict: bool = False) -> bool:
    if is_complete(run_dir):
        print(f"selfspec: reusing cached run {run_dir}", file=sys.stderr)
        review(Manifest.load(run_dir).to_dict(), run_dir, strict)
        return True
    return False


def check_job(job: rundirs.Job) -> None:
    """The `check_job` hook: bad names, options, seeds or corpus stop here, before an engine starts or anything
    is written."""
    registry.get_plugin_manager().hook.check_job(job=job)


def generate(job: rundirs.Job, progress: bool = True, checked: bool = False) -> Path:
    """Run the job in this process (or reuse its finished run); returns the run directory. `checked`: the parent
    that started this process ran `check_job` on the job already."""
    run_dir, cfg = job.dir, job.config
    if _cached(run_dir, cfg.strict):
        return run_dir
    if not checked:
        check_job(job)
    with rundirs.writer_lock(run_dir):  # concurrent runs (or ranks) of one job: one generates, the rest wait
        if _cached(run_dir, cfg.strict):
            return run_dir
        backend = None if cfg.seeds_only else start_backend(job)  # the seeds-only control starts no engine
        try:
            result = registry.get_plugin_manager().hook.generate_dataset(job=job, backend=backend, progress=progress)
        finally:
            if backend is not None:
                backend.close()
        manifest = write_run(run_dir, dataset.check(result, job), cfg.messages)
    if manifest.get("unfinished"):
        raise SelfSpecError(unfinished_message(manifest, run_dir))
    print(summary(manifest, run_dir), file=sys.stderr)
    review(manifest, run_dir, cfg.strict)
    return run_dir


def start_backend(job: rundirs.Job):
    """The job's backend, started; an iterative round's serves the previous round's adapter beside the base."""
    cfg = job.config
    adapters = [cfg.previous_round.adapter] if cfg.previous_round else []
    factory = registry.backend(cfg.backend)
    return factory(job.model, start_options(cfg.backend, factory, registry.backend_settings(cfg), adapters))


def write_run(run_dir: Path, result: Generated, messages: bool) -> dict:
    """A finished run's files; the manifest last. Chat-format runs (and `messages: true`) get chat `messages`."""
    manifest = result.manifest.to_dict()
    data = result.data
    if result.manifest.prompt_format == "chat" or messages:  # chat-format runs train on the messages
        data = [{**row, "messages": as_messages(row)} for row in data]
    fileio.write_jsonl(run_dir / INSTRUCTIONS, result.instructions)
    fileio.write_jsonl(run_dir / REJECTED, result.rejected)
    if not data:  # nothing to train on: no data.jsonl, so the run is not complete, but `inspect` reads it
        manifest["unfinished"] = manifest["unfinished"] or "no triplet survived the filters"
        fileio.write_json(run_dir / MANIFEST, manifest)
        return manifest
    fileio.write_jsonl(run_dir / DATA, data)
    fileio.write_text(run_dir / CARD, dataset_card(manifest, data))
    fileio.write_json(run_dir / MANIFEST, manifest)
    return manifest


def unfinished_message(manifest: dict, run_dir: Path) -> str:
    """One sentence, the funnel as text, and what to change for the leading rejections."""
    lines = advice(manifest["counts"], manifest["inputs"].get("settings", {}))
    return (
        f"{manifest['unfinished']}: {funnel_text(manifest['counts'])}. Every rejection is in {run_dir}/rejected.jsonl "
        f"(`selfspec inspect {run_dir}`)" + "".join(f"\n  {line}" for line in lines)
    )


def review(manifest: dict, run_dir: Path, strict: bool) -> None:
    """Warn about a poor run before anything trains on it (`strict`: stop instead)."""
    warnings = poor_run(manifest, fileio.read_jsonl(run_dir / DATA))
    for warning in warnings:
        print(f"selfspec: warning: {warning}", file=sys.stderr)
    if warnings and strict:
        raise SelfSpecError(
            f"selfspec.strict: the run in {run_dir} is poor ({len(warnings)} warning(s) above); not training on it"
        )


def run_child(task: dict, what: str) -> None:
    """One child Python process (`python -m selfspec_plugin.cli child FILE`) for `task`, written to a job file in a
    temporary folder: the engine's memory (GPU too) is gone when it returns. The child inherits this process's
    environment as it is (offline or not); its stderr is read through quiet.py's filter of known third-party noise
    (unless SELFSPEC_VERBOSE=1), which also drops what the child prints while its interpreter shuts down."""
    with tempfile.TemporaryDirectory(prefix="selfspec-child-") as tmp:
        path = Path(tmp) / "job.json"
        fileio.write_json(path, task)
        cmd = [sys.executable, "-m", "selfspec_plugin.cli", "child", str(path)]
        code = subprocess.run(cmd, env=child_env()).returncode if quiet.verbose() else quiet.run(cmd, env=child_env())
    if code != 0:
        raise SelfSpecError(f"selfspec: {what} failed (exit code {code}); see the messages above")


def generate_in_child(job: rundirs.Job) -> Path:
    """Generate (or reuse) the job's run in a child process; returns the run directory."""
    run_dir = job.dir
    if _cached(run_dir, job.config.strict):
        return run_dir
    check_job(job)  # a bad name or file: fail here, before the runs folder is made (and only here)
    run_child({"generate": job.to_json(), "checked": True}, "generation")
    return run_dir


def evaluate_in_child(job: rundirs.Job, adapter: str) -> dict:
    """`selfspec eval` of base vs a trained adapter in a child process; its results land in ADAPTER/eval/."""
    config = {"base_model": job.model, "output_dir": str(adapter), "selfspec": job.config.model_dump(mode="json")}
    run_child({"eval": {"config": config, "adapter": str(adapter)}}, "evaluation")
    return fileio.read_json(Path(adapter) / "eval" / "eval.json")
