"""Iterative self-specialization: `selfspec iterate RECIPE.yml --rounds N`.

Round 1 is the recipe itself (`axolotl train RECIPE.yml`). Round r > 1 keeps round 1's instructions, has the base
model plus round r-1's adapter (vLLM LoRA) write their responses again, filters them again, and trains a new
adapter from the base model on them. Each round is one `axolotl train` on a derived recipe,
`<output_dir>/round-r.yml`, whose output goes to `<output_dir>/round-r/` and whose run directory (with its own
key and manifest) names the previous round's run and adapter. A round is skipped, so an interrupted iteration
resumes, when its adapter and run exist and the adapter was trained with the same settings: after every
`axolotl train` the plugin records a hash of the config in `<output_dir>/selfspec-trained.json`.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

from . import fileio
from .dataset import DATA, Manifest, is_complete
from .errors import SelfSpecError
from .provenance import TRAINED, training_fingerprint, write_trained
from .recipe import read, resolve_paths
from .runner import AXOLOTL_OUTPUT_DIR, make_job


def record_training(config_path: str, output_dir: str, *details) -> None:
    """Called by the plugin after `axolotl train` CONFIG has saved its adapter in output_dir: the config read as
    `selfspec iterate` reads it (input paths resolved against its folder), fingerprinted in the adapter's marker;
    `details`: provenance.write_trained's prompt_format, data and steps."""
    raw = read(config_path)
    raw["selfspec"] = resolve_paths(raw["selfspec"], Path(config_path).absolute().parent)[0]
    write_trained(raw, config_path, output_dir, *details)


def retrain_reason(out: Path, run_dir: Path, cfg: dict) -> str | None:
    """Why round's output dir cannot be reused as it is (None: it can)."""
    if not (out / "adapter_model.safetensors").is_file() or not is_complete(run_dir):
        return "not trained yet"
    marker = out / TRAINED
    if not marker.is_file():
        return f"no {TRAINED} in {out}: which settings trained that adapter is unknown"
    if fileio.read_json(marker).get("config_sha256") != training_fingerprint(cfg):
        return f"the config changed since the adapter in {out} was trained"
    return None


def round_config(raw: dict, r: int, previous: dict | None) -> dict:
    """The Axolotl config of round r (1: the recipe unchanged)."""
    if r == 1:
        return raw
    cfg = copy.deepcopy(raw)
    out = Path(raw.get("output_dir") or AXOLOTL_OUTPUT_DIR) / f"round-{r}"
    cfg["output_dir"] = str(out)
    if raw.get("dataset_prepared_path"):
        cfg["dataset_prepared_path"] = str(out / "prepared")
    cfg["selfspec"]["previous_round"] = previous
    return cfg


def changed_responses(previous_run: Path, run: Path) -> tuple[int, int]:
    """(responses that differ, triplets compared) between two rounds' data, matched by item id."""
    before = {row["id"]: row["output"] for row in fileio.read_jsonl(previous_run / DATA)}
    after = [row for row in fileio.read_jsonl(run / DATA) if row["id"] in before]
    return sum(row["output"] != before[row["id"]] for row in after), len(after)


def axolotl_train(recipe: Path) -> None:
    axolotl = Path(sys.executable).parent / "axolotl"
    proc = subprocess.run(
        [str(axolotl) if axolotl.is_file() else "axolotl", "train", str(recipe)], env=os.environ.copy()
    )
    if proc.returncode != 0:
        raise SelfSpecError(f"axolotl train {recipe} failed (exit code {proc.returncode}); see the messages above")


def iterate(recipe: Path, raw: dict, rounds: int | None = None, train=axolotl_train) -> list[dict]:
    """Run (or resume) `rounds` rounds; one summary per round: output dir, run dir, triplets, changed responses."""
    import yaml  # (here: `selfspec --help` does not load it)

    rounds = rounds or int(raw["selfspec"].get("rounds", 1))
    if rounds < 1:
        raise SelfSpecError(f"--rounds must be at least 1, got {rounds}")
    summaries, previous = [], None
    for r in range(1, rounds + 1):
        cfg = round_config(raw, r, previous)
        out = Path(cfg.get("output_dir") or AXOLOTL_OUTPUT_DIR)
        path = recipe if r == 1 else out.parent / f"round-{r}.yml"
        run_dir = make_job(cfg["selfspec"], cfg.get("base_model"), str(out)).dir
        reason = retrain_reason(out, run_dir, cfg)
        if reason is None:
            print(f"selfspec: round {r}: reusing the adapter in {out} (trained on {run_dir})", file=sys.stderr)
        else:
            if r > 1:
                fileio.write_text(path, yaml.safe_dump(cfg, sort_keys=False))
            print(f"selfspec: round {r} of {rounds}: axolotl train {path} ({reason})", file=sys.stderr)
            train(path)
        manifest = Manifest.load(run_dir)
        summary = {
            "round": r,
            "output_dir": str(out),
            "run_dir": str(run_dir),
            "recipe": str(path),
            "triplets": manifest.counts["triplets"],
        }
        if previous:
            summary["changed_responses"] = changed_responses(Path(previous["run_dir"]), run_dir)
        summaries.append(summary)
        previous = {"run_dir": str(run_dir.resolve()), "adapter": str(out.resolve())}
    return summaries
