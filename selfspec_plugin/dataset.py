"""The generation contract: what a `generate_dataset` hook returns, how the runner checks it, and the names of the
files a run holds. Every pipeline, the built-in one or a plugin's, ends here, so data.jsonl, rejected.jsonl,
instructions.jsonl, the dataset card and manifest.json always have the shape that `inspect`, the report, the
Axolotl plugin and `selfspec eval` read; `Manifest.load` is the one reader of manifest.json. The runner writes the
files (runner.write_run); this module imports no implementation, no run folder and no report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

from . import fileio
from .errors import SelfSpecError
from .prompts import FORMATS, prompt_format

# The files of one run directory (rundirs.py describes the layout).
MANIFEST = "manifest.json"  # written last: its presence (with DATA) marks the run complete
DATA = "data.jsonl"
INPUTS = "inputs.json"  # written when a run starts: lets a later run with other amounts find it unfinished
INSTRUCTIONS = "instructions.jsonl"  # the kept instructions (`selfspec iterate` reuses them)
REJECTED = "rejected.jsonl"
CARD = "README.md"  # the dataset card

FIELDS = ("id", "instruction", "input", "output")
COUNTS = ("instructions_kept", "triplets", "rejected", "requested", "seeds")
STAGES = ("instructions", "responses")


@dataclass
class Manifest:
    """manifest.json: what made the run and what came of it (written last: its presence marks the run complete)."""

    run_key: str  # the Job's key
    inputs: dict  # the Job's inputs: what the key hashes
    model: str
    backend: Optional[str]  # None: no engine ran (the seeds-only control)
    prompt_format: str  # prompts.FORMATS: how the generator was prompted, and so the format the data trains in
    counts: dict  # instructions_kept, triplets, rejected {reason: n}, requested, seeds
    versions: dict
    stages: dict = field(
        default_factory=lambda: {  # what each stage did; a pipeline without the stages leaves 0s
            "instructions": {"rounds": 0, "prompts": 0, "tokens": 0, "seconds": 0.0},
            "responses": {"chunks": 0, "tokens": 0, "seconds": 0.0},
        }
    )
    previous_round: Optional[dict] = None  # an iterative round: the run and adapter it answered with
    extended_from: list = field(default_factory=list)  # runs whose rounds and chunks it reused
    recipe: Optional[dict] = None  # the recipe file: path, sha256, bundle
    seeds_only: bool = False
    drift: Optional[dict] = None  # filters.drift of the data against the seeds
    tokens_per_second: Optional[float] = None
    wall_seconds: float = 0.0
    unfinished: Optional[str] = None  # why a run that kept no triplet has no data.jsonl (`selfspec inspect` reads it)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "Manifest":
        """A manifest as written by any version: keys it no longer has are left out (such as `training_format`,
        the Axolotl dataset type, which follows from `prompt_format`), keys it gained keep their defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["prompt_format"] = prompt_format(values.get("prompt_format") or raw.get("training_format")) or FORMATS[0]
        missing = {"run_key": "", "inputs": {}, "model": "", "backend": None, "counts": {}, "versions": {}}
        return cls(**{**missing, **values})

    @classmethod
    def load(cls, run_dir: str | Path) -> "Manifest":
        """The run's manifest.json: every reader of the file goes through here."""
        path = Path(run_dir) / MANIFEST
        if not path.is_file():
            raise SelfSpecError(f"{run_dir}: no {MANIFEST} (not a finished run)")
        return cls.from_dict(fileio.read_json(path))


def is_complete(path: Path) -> bool:
    return (path / MANIFEST).is_file() and (path / DATA).is_file()


@dataclass
class Generated:
    """A `generate_dataset` hook's result."""

    data: list[dict]  # the training triplets: {id, instruction, input, output, docs?}
    rejected: list[dict]  # everything dropped, each with its reason in `rejected`
    instructions: list[dict]  # the kept instructions ({id, instruction, input}; `selfspec iterate` reuses them)
    manifest: Manifest


def check(result, job) -> Generated:
    """A hook's result as the runner needs it, or a SelfSpecError that says what the implementation got wrong."""
    where = "selfspec: the generate_dataset hook"
    if not isinstance(result, Generated):
        raise SelfSpecError(f"{where} returned {type(result).__name__}, expected selfspec_plugin.dataset.Generated")
    manifest = result.manifest
    if not isinstance(manifest, Manifest):
        raise SelfSpecError(f"{where}: manifest is a {type(manifest).__name__}, expected dataset.Manifest")
    if manifest.run_key != job.key:
        raise SelfSpecError(f"{where}: manifest.run_key {manifest.run_key!r} is not the job's key {job.key!r}")
    if manifest.prompt_format not in FORMATS:
        raise SelfSpecError(
            f"{where}: manifest.prompt_format {manifest.prompt_format!r} is not one of {', '.join(FORMATS)}"
        )
    missing = [k for k in COUNTS if k not in manifest.counts] + [k for k in STAGES if k not in manifest.stages]
    if missing:
        raise SelfSpecError(
            f"{where}: the manifest has no {', '.join(missing)} (counts: {', '.join(COUNTS)}; "
            f"stages: {', '.join(STAGES)})"
        )
    for i, row in enumerate(result.data):
        bad = [f for f in FIELDS if not isinstance(row.get(f), str)]
        if bad:
            raise SelfSpecError(
                f"{where}: data[{i}] has no string {', '.join(bad)} (a triplet needs {', '.join(FIELDS)})"
            )
    for i, row in enumerate(result.rejected):
        if not isinstance(row.get("rejected"), str):
            raise SelfSpecError(f"{where}: rejected[{i}] has no string `rejected` (its reason)")
    return result
