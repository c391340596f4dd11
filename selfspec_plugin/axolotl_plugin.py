"""The Axolotl adapter: validates the `selfspec:` block, generates (in a child process), then hands the
generated jsonl to Axolotl's own dataset loading. Nothing here knows how generation works."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from axolotl.integrations.base import BasePlugin
from axolotl.utils.dict import DictDefault

from . import quiet
from .config import SelfSpecConfig
from .dataset import DATA, MANIFEST, Manifest, is_complete
from .funnel import funnel_text
from .iterate import record_training
from .loss_logits import keep_loss_logits_only
from .provenance import matched_steps, training_steps
from .recipe import block_problems, invalid_block, resolve, seed_warnings
from .runner import evaluate_in_child, generate_in_child, make_job, training_threads

LOG = logging.getLogger("selfspec")
PLACEHOLDER = "selfspec:generated"
quiet.install()  # the third-party noise printed from here on (what Axolotl's start printed is Makefile's `demo`'s)


def _log_free_gpu_memory() -> None:
    """The generator ran in a child process that has exited: its GPU memory should be back."""
    import torch

    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        LOG.info("selfspec: after generation %.1f of %.1f GiB GPU memory free", free / 2**30, total / 2**30)


def _place_cpu_ranks(cfg: DictDefault) -> None:
    """Axolotl pins rank r of a multi-process launch to accelerator r (`device_map = {"": LOCAL_RANK}`). A CPU-only
    machine has none, so ranks launched there (torchrun + gloo) would fail to load the model: load it on the CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and str(cfg.device) == "cpu":
        cfg.device_map = "cpu"


def selfspec_block(cfg: DictDefault) -> dict:
    """The `selfspec:` block with its input paths resolved against the recipe's folder (Axolotl records the file
    it read in `axolotl_config_path`; without one, the current directory)."""
    return resolve(
        dict(cfg.selfspec), Path(cfg.axolotl_config_path).absolute().parent if cfg.axolotl_config_path else Path.cwd()
    )


# The Axolotl dataset type that trains each prompt format: the one place Axolotl's words for them are used.
AXOLOTL_TYPES = {"completion": "alpaca", "chat": "chat_template"}
TRAINED_IN = {axolotl: ours for ours, axolotl in AXOLOTL_TYPES.items()}


def dataset_entry(run_dir) -> dict:
    """Axolotl's `datasets:` entry for a finished run, in the prompt format it was generated in (the manifest's):
    `chat` trains on `messages` through the model's own chat template (loss on the assistant turn), `completion`
    on the Alpaca template."""
    prompt_format = Manifest.load(run_dir).prompt_format
    entry = {"path": str(run_dir / DATA), "ds_type": "json", "type": AXOLOTL_TYPES[prompt_format]}
    if prompt_format == "chat":
        entry.update(field_messages="messages", roles_to_train=["assistant"])
    return entry


def match_steps(cfg: DictDefault, output_dir: str | None) -> int | None:
    """`selfspec.match_steps_of`: Axolotl's max_steps set to the optimizer steps that trained the adapter in
    output_dir, so this run (the seeds-only control) takes as many steps, cycling over its own data. HF's Trainer
    stops at max_steps whatever num_epochs says; Axolotl would otherwise stop after
    ceil(examples x num_epochs / (micro_batch_size x gradient_accumulation_steps x world size)) steps."""
    if not output_dir:
        return None
    steps = matched_steps(output_dir)
    if cfg.max_steps and cfg.max_steps != steps:
        LOG.warning(
            "selfspec: max_steps %s replaced by %d, the steps of %s (match_steps_of)", cfg.max_steps, steps, output_dir
        )
    cfg.max_steps = steps
    LOG.info("selfspec: training for %d optimizer steps, as %s did (match_steps_of)", steps, output_dir)
    return steps


class SelfSpecPlugin(BasePlugin):
    """`plugins: [selfspec_plugin.SelfSpecPlugin]` + a `selfspec:` block in an Axolotl config."""

    def register(self, cfg: dict) -> None:
        # Called before Axolotl validates the config: a bad block stops here with every problem in one list
        # (an unknown key with its closest known one), not as pydantic's dump of the merged model.
        block = cfg.get("selfspec")
        if isinstance(block, dict):
            problems = block_problems(dict(block))
            if problems:
                raise invalid_block(str(cfg.get("axolotl_config_path") or "config"), problems)
        # Axolotl validates `datasets` before any hook runs; the real entry is set in load_datasets.
        if cfg.get("selfspec") and not cfg.get("datasets"):
            cfg["datasets"] = [{"path": PLACEHOLDER, "ds_type": "json", "type": "alpaca"}]

    def get_input_args(self) -> str:
        return "selfspec_plugin.config.SelfSpecArgs"

    def load_datasets(self, cfg: DictDefault, preprocess: bool = False):
        if not cfg.selfspec:
            return None
        from axolotl.common.datasets import load_datasets

        _place_cpu_ranks(cfg)
        job = make_job(selfspec_block(cfg), cfg.base_model, cfg.output_dir, cfg.axolotl_config_path)
        if job.config.rounds > 1 and not job.config.previous_round:
            LOG.warning(
                "selfspec: rounds: %d is run by `selfspec iterate`; `axolotl train` runs round 1", job.config.rounds
            )
        if os.environ.get("RANK", "0") == "0" and not is_complete(job.dir):  # a new run: said before it starts
            for line in seed_warnings(job):
                LOG.warning("selfspec: %s", line)
        run_dir = generate_in_child(job)  # every rank asks; one generates, the others wait for it (a file lock)
        _log_free_gpu_memory()
        entry = dataset_entry(run_dir)
        rank, world = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
        print(
            f"selfspec: rank {rank} of {world}: training on {entry['path']} "
            f"(format {TRAINED_IN[entry['type']]}: Axolotl's type {entry['type']})",
            file=sys.stderr,
            flush=True,
        )
        own = [d for d in cfg.datasets or [] if d.get("path") != PLACEHOLDER]
        if own and not job.config.keep_datasets:
            LOG.warning(
                "selfspec: the config's own `datasets` are replaced by the generated data "
                "(selfspec.keep_datasets: true trains on both)"
            )
        cfg.datasets = [DictDefault(entry)] + (own if job.config.keep_datasets else [])
        steps = match_steps(cfg, job.config.match_steps_of)
        meta = load_datasets(cfg=cfg)
        if steps:  # Axolotl counts min(its epochs' steps, max_steps) here, for warmup_ratio and logging: the run's own
            meta.total_num_steps = steps
        return meta

    def pre_model_load(self, cfg: DictDefault) -> None:
        """A CPU rank that `accelerate launch` left at one thread trains on its share of the cores."""
        import torch

        if not cfg.selfspec:
            return
        threads = training_threads(os.environ, len(os.sched_getaffinity(0)), torch.cuda.is_available())
        if threads:
            torch.set_num_threads(threads)
            print(
                f"selfspec: training on {threads} CPU threads, not the one thread `accelerate launch` gives a CPU "
                "rank by default (export OMP_NUM_THREADS=N, N > 1, to choose another count)",
                file=sys.stderr,
            )

    def post_model_load(self, cfg: DictDefault, model) -> None:
        """`selfspec.loss_logits_only`: the output layer on the positions the loss reads only (supervised training:
        preference training reads the logits of every position)."""
        if not cfg.selfspec or cfg.rl or cfg.orpo_alpha:
            return
        if not cfg.selfspec.get("loss_logits_only", SelfSpecConfig.model_fields["loss_logits_only"].default):
            return
        if keep_loss_logits_only(model):
            print("selfspec: the output layer runs only where the loss reads (loss_logits_only)", file=sys.stderr)
        else:  # said, not silent: the user expects the faster path
            print(
                f"selfspec: loss_logits_only: {type(model).__name__} is not a causal LM it can patch; trained as is",
                file=sys.stderr,
            )

    def add_callbacks_post_trainer(self, cfg: DictDefault, trainer) -> list:
        """A callback that keeps the trainer's own step count at the end of training, for the adapter's marker."""
        if not cfg.selfspec:
            return []
        from transformers import TrainerCallback

        plugin = self

        class RecordSteps(TrainerCallback):
            def on_train_end(self, args, state, control, **kwargs):
                plugin.steps = training_steps(trainer, state)

        return [RecordSteps()]

    def post_train_unload(self, cfg: DictDefault) -> None:
        """Record which config trained the adapter (for `selfspec iterate`); with `selfspec.eval_after_train: true`,
        score base vs the new adapter once the trainer is gone; then say where everything is, last."""
        from axolotl.utils.distributed import is_main_process

        if not cfg.selfspec or not is_main_process():
            return
        trained = (cfg.datasets or [{}])[0]  # the generated data's entry (load_datasets puts it first)
        data = trained.get("path") if trained.get("path") != PLACEHOLDER else None
        if cfg.axolotl_config_path and cfg.output_dir:
            steps = dict(getattr(self, "steps", None) or {})
            if cfg.selfspec.get("match_steps_of"):
                steps["matched"] = {
                    "of": str(Path(cfg.selfspec["match_steps_of"]).absolute()),
                    "optimizer_steps": cfg.max_steps,
                }
            trained_in = TRAINED_IN.get(trained.get("type")) if data else None
            record_training(cfg.axolotl_config_path, cfg.output_dir, trained_in, data, steps)
        evaluated = bool(cfg.selfspec.get("eval_after_train"))
        if evaluated:
            result = evaluate_in_child(make_job(selfspec_block(cfg), cfg.base_model, cfg.output_dir), cfg.output_dir)
            _log_to_trackers(cfg, result)
        if data and cfg.output_dir and (Path(data).parent / MANIFEST).is_file():
            run_dir = Path(data).parent
            has_tasks = bool((cfg.selfspec.get("eval") or {}).get("tasks"))
            text = closing_summary(
                Manifest.load(run_dir).to_dict(),
                run_dir,
                Path(cfg.output_dir),
                str(cfg.axolotl_config_path or "RECIPE.yml"),
                has_tasks,
                evaluated,
            )
            print(text, file=sys.stderr, flush=True)


def closing_summary(manifest: dict, run_dir: Path, adapter: Path, recipe: str, has_tasks: bool, evaluated: bool) -> str:
    """The last lines of `axolotl train`: what the data was, where it and the adapter are, what to run next
    (`has_tasks`: the recipe names its eval tasks; `evaluated`: eval_after_train has scored the adapter)."""
    counts = manifest["counts"]
    funnel = f"{counts['triplets']} seed tasks (seeds only)" if manifest.get("seeds_only") else funnel_text(counts)
    lines = [
        "selfspec: done",
        f"  data     {funnel}",
        f"  run      {_shown(run_dir)}",
        f"  adapter  {_shown(adapter)}",
    ]
    if evaluated:
        lines.append(f"  eval     {_shown(adapter / 'eval' / 'eval.md')}")
    lines.append(f"  next     selfspec inspect {_shown(run_dir)}   (what the data holds)")
    if not evaluated:
        task = "" if has_tasks else " --task HELD_OUT.jsonl"
        lines.append(f"           selfspec eval {recipe}{task}   (base vs this adapter: docs/eval.md)")
    return "\n".join(lines)


def _shown(path: Path) -> str:
    """A path as short as it can be written from here: relative when under the current directory."""
    path = Path(path).absolute()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _log_to_trackers(cfg: DictDefault, result: dict) -> None:
    """The eval numbers, on the tracker the training run used (W&B and/or trackio)."""
    flat = tracker_metrics(result)
    if cfg.use_wandb:
        import wandb

        run = wandb.run or wandb.init(
            project=cfg.wandb_project, entity=cfg.wandb_entity, name=cfg.wandb_name, id=cfg.wandb_run_id, resume="allow"
        )
        run.log(flat)
        run.summary.update(flat)
    if cfg.use_trackio:
        import trackio

        trackio.init(project=cfg.trackio_project_name or "axolotl", name=cfg.trackio_run_name, resume="allow")
        trackio.log(flat)
        trackio.finish()
    LOG.info("selfspec: eval results in %s/eval", cfg.output_dir)


def tracker_metrics(result: dict) -> dict[str, float]:
    """Flat numbers for W&B / trackio: `selfspec_eval/<task>/k<k>/<model>_<metric>`, averages and deltas."""
    flat = {
        f"selfspec_eval/{r['task']}/k{r['k']}/{r['model']}_{m}": r[m]
        for r in result["rows"]
        for m in ("primary", "f1", "rougeL")
    }
    flat |= {
        f"selfspec_eval/average/k{a['k']}/{a['model']}_{m}": a[m] for a in result["averages"] for m in ("primary", "f1")
    }
    flat |= {
        f"selfspec_eval/{d['task']}/k{d['k']}/{d['model']}-{d['reference']}_delta_{m}": d[m]["diff"]
        for d in result["deltas"]
        for m in ("primary", "f1")
    }
    return flat
