"""Run identity and run directories: what a run is (Job: settings, model, where), the hash of everything that
shapes its output (the run key), the lock that makes one process its writer, and the reuse of other runs'
rounds and chunks.

Layout of one run:  <runs_dir>/<key>/
    instructions/round-00000.jsonl   raw brainstorming completions, one file per round
    responses/chunk-00000.jsonl      raw responses, one file per chunk
    data.jsonl                       the kept triplets (alpaca fields + id)
    rejected.jsonl                   everything dropped, with its reason
    inputs.json                      what the run key hashes, written when the run starts
    instructions.jsonl               the kept instructions (`selfspec iterate` reuses them)
    index/                           the retriever's index of the corpus (BM25), when there is one
    README.md                        the dataset card
    report/                          `selfspec inspect --report`: report.html and its figures
    manifest.json                    inputs' hashes, params, counts, timings: written last = run complete
A run that differs from another (finished or not) only in its amounts starts from its rounds and chunks (hard links).
<runs_dir>/.<key>.lock              held (flock) by the one process generating the run; others wait
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator, Optional

from . import registry
from .backends.base import ability, output_options, validated
from .config import SelfSpecConfig
from .corpus import corpus_digest, is_record_file
from .dataset import INPUTS, MANIFEST, Manifest, is_complete
from .errors import SelfSpecError
from .fileio import check_file, make_dir, read_json, resolved_note, sha256_file, write_bytes, write_json
from .prompts import templates_hash
from .seeds import load_seeds

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
AMOUNTS = (
    "num_instructions",
    "num_triplets",
    "max_rounds",
)  # how much is generated: a larger run extends a smaller one


@dataclass(frozen=True)
class Job:
    """A resolved generation job: settings, generator model, and where its runs live."""

    config: SelfSpecConfig
    model: str
    runs_dir: Path
    recipe: Optional[dict] = None  # the recipe file it came from (recipe.provenance): recorded, not part of the key

    @cached_property
    def inputs(self) -> dict:
        """Everything that shapes the output (`run_inputs`), computed once per job: the seeds, corpus and weights
        are hashed (and pins checked) here, and every user of the run key reads it from the job."""
        return run_inputs(self)

    @cached_property
    def seeds(self) -> list[dict]:
        """The seed tasks, read and checked once per run (seeds.load_seeds): the `check_job` hook and the pipeline
        read them here, and the generation child gets them with the job."""
        return load_seeds(self.config.seeds)

    @property
    def key(self) -> str:
        return run_key(self.inputs)

    @property
    def dir(self) -> Path:
        return self.runs_dir / self.key

    def begin(self) -> list[str]:
        """Start the run's folder: its inputs.json (unless there), and the rounds and chunks of every other run it
        extends (`extend_from`; none for an iterative round, which answers another run's instructions). Returns the
        runs it took files from. The pipeline persists through this, never through the run layer's modules."""
        if not (self.dir / INPUTS).is_file():
            write_json(self.dir / INPUTS, self.inputs)
        return [] if self.config.previous_round else extend_from(self.dir, self.inputs)

    def to_json(self) -> str:
        """For the generation child: the job with its inputs and seeds, so the child neither hashes gigabytes nor
        reads the seeds again."""
        return json.dumps(
            {
                "config": self.config.model_dump(),
                "model": self.model,
                "runs_dir": str(self.runs_dir),
                "recipe": self.recipe,
                "inputs": self.inputs,
                "seeds": self.seeds,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "Job":
        raw = json.loads(text)
        job = cls(SelfSpecConfig(**raw["config"]), raw["model"], Path(raw["runs_dir"]), raw.get("recipe"))
        for computed in ("inputs", "seeds"):
            if raw.get(computed):
                job.__dict__[computed] = raw[computed]  # (cached_property's own slot)
        return job


def adapter_fingerprint(adapter: str) -> str:
    """A LoRA adapter's weights, hashed: retraining the previous round invalidates the rounds after it."""
    weights = Path(adapter) / "adapter_model.safetensors"
    if not weights.is_file():
        raise SelfSpecError(f"selfspec.previous_round.adapter: no adapter_model.safetensors in {adapter}")
    return sha256_file(weights)


def _hub_config(model: str) -> Optional[str]:
    """A hub model id's cached config.json, if the local Hugging Face cache has it."""
    if not HUB_ID.match(model):
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model, "config.json")
    return found if isinstance(found, str) else None


def cache_dir() -> Path:
    """selfspec's per-user cache: $SELFSPEC_CACHE, else $XDG_CACHE_HOME/selfspec, else ~/.cache/selfspec."""
    explicit = os.environ.get("SELFSPEC_CACHE")
    return Path(explicit) if explicit else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "selfspec"


def weights_sha256(path: Path) -> str:
    """A weight file's sha256, remembered by (absolute path, size, mtime) in the user's cache: a re-run does not
    re-read gigabytes, and a file rewritten in place (a re-export, a merged adapter) is hashed again."""
    stat, key = path.stat(), str(path.resolve())
    cache_file = cache_dir() / "weights-sha256.json"
    try:
        cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    except (OSError, ValueError):  # unreadable or damaged: hash again, write a fresh one
        cache = {}
    hit = cache.get(key) or {}
    if (hit.get("size"), hit.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns):
        return hit["sha256"]
    digest = sha256_file(path)
    cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_json(cache_file, cache)
    except OSError:  # a read-only home: correct, only slower next time
        pass
    return digest


def model_fingerprint(model: str) -> dict:
    """Identify a model by the contents of its config, tokenizer and weight files (path-independent).
    A hub id (org/name) is identified by its name, and must be in the local cache when the hub is offline."""
    path = Path(model)
    if not path.is_dir():
        offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in (
            "1",
            "ON",
            "YES",
            "TRUE",
        )  # as huggingface_hub reads it
        if HUB_ID.match(model) and (not offline or _hub_config(model)):
            return {"hub_id": model}
        raise SelfSpecError(
            f"model not found: {model!r} is not a local model directory{resolved_note(model)}"
            + (" and the hub is offline (HF_HUB_OFFLINE=1)" if HUB_ID.match(model) else "")
            + " (for the demo model run `selfspec fetch-demo-model`)"
        )
    if not (path / "config.json").is_file():
        raise SelfSpecError(f"model directory {model!r}{resolved_note(model)} has no config.json")
    small = {
        name: sha256_file(path / name)
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json")
        if (path / name).is_file()
    }
    weights = {p.name: weights_sha256(p) for p in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))}
    return {"files": small, "weights": weights}


def output_settings(settings: dict, backend) -> dict:
    """The settings as the run key sees them. The one rule for backend options, each backend's own declaration:
    every options block a registered backend owns (`vllm:`) as its options model reads it, and the chosen
    backend's `backend_options`, less the options it declares `not_output` (how fast or where, and secrets)."""
    out = dict(settings)
    for key, owner in registry.option_blocks().items():
        if key in out:
            out[key] = output_options(owner, validated(owner, key, out[key]))
    out["backend_options"] = output_options(backend, out["backend_options"])
    return out


def run_inputs(job: Job) -> dict:
    """Everything that shapes the output, as plain data."""
    not_generated = {
        "runs_dir",
        "chunk_size",
        "trust_remote_code",
        "eval",
        "eval_after_train",
        "rounds",
        "ray",
        "seeds_sha256",
        "corpus_sha256",
        "keep_datasets",
        "match_steps_of",
        "loss_logits_only",
        "strict",
    }
    backend = registry.backends().get(job.config.backend)
    cfg = job.config  # under these no brainstorming round stops at a quota, nor shares a call with the next
    for setting, needs in (("stop_at_quota", "stops_early"), ("rounds_per_call", "refills")):
        if cfg.num_triplets or cfg.previous_round or not ability(backend, needs):
            not_generated.add(setting)
    settings = output_settings(job.config.model_dump(exclude=not_generated), backend)
    remote = ability(backend, "remote_model") and not Path(job.model).is_dir()  # a name on a server
    previous = job.config.previous_round
    return {
        "seeds_sha256": pinned_sha256(job.config.seeds, "seeds", job.config.seeds_sha256),
        "corpus_sha256": pinned_sha256(
            job.config.corpus, "corpus", job.config.corpus_sha256, text_field=job.config.corpus_text_field
        )
        if job.config.corpus
        else None,
        "model": {"served": job.model} if remote else model_fingerprint(job.model),
        "templates": templates_hash(),
        "filters": sorted(
            n for n, spec in registry.filters().items() if job.config.filters is None or n in job.config.filters
        ),
        "settings": settings,
        **(
            {
                "previous_adapter_sha256": adapter_fingerprint(previous.adapter),
                "previous_run": Path(previous.run_dir).name,
            }
            if previous
            else {}
        ),
    }


def pinned_sha256(
    path: str, key: str, pinned: Optional[str], pin_key: Optional[str] = None, text_field: str = "text"
) -> str:
    """The file's sha256 (a folder corpus's: of its extracted text, corpus.corpus_digest); a recipe that pinned
    another one stops here, before any engine starts or file is written."""
    if key == "corpus":
        actual, what = corpus_digest(path, text_field), "the file has" if is_record_file(path) else "its text has"
    else:
        actual, what = sha256_file(check_file(Path(path), f"selfspec.{key}")), "the file has"
    if pinned and pinned.lower() != actual:
        raise SelfSpecError(
            f"selfspec.{pin_key or key + '_sha256'}: {path} has changed since the recipe pinned it: "
            f"expected sha256 {pinned.lower()}, {what} {actual}"
        )
    return actual


# Settings that name files (whose contents are hashed instead: a recipe moved, packed or unpacked elsewhere keeps
# its key) and the settings left at their defaults (a new setting whose default keeps the old behaviour leaves
# every key as it was) are not part of a run's identity.
PATHS = ("seeds", "corpus", "previous_round")


# A setting whose default changed what a run generates is compared with the value that generates as before it
# existed: runs at the new default get new keys (their chunks are not mixed with older runs' ones), and setting the
# old value finds the runs made before.
GENERATED_AS_BEFORE = {"stop_loops": False, "fast_top_p": False, "stop_at_quota": False, "rounds_per_call": 1}


@functools.cache
def defaults() -> dict:
    """Every setting at its default, as the key sees settings (`output_settings`); GENERATED_AS_BEFORE's as before."""
    return output_settings({**SelfSpecConfig(seeds="").model_dump(), **GENERATED_AS_BEFORE}, None)


def _changed(values: dict, defaults: dict) -> dict:
    out = {}
    for key, value in values.items():
        default = defaults.get(key, _changed)  # (a marker no setting equals)
        if isinstance(value, dict) and isinstance(default, dict):
            value = _changed(value, default)
            if value:
                out[key] = value
        elif value != default:
            out[key] = value
    return out


def identity(inputs: dict, leave_out: tuple[str, ...] = ()) -> dict:
    """What makes a run's output, as hashed: `inputs` without file paths and default settings."""
    settings = {k: v for k, v in inputs["settings"].items() if k not in PATHS + leave_out}
    return {**inputs, "settings": _changed(settings, defaults())}


def _digest(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def run_key(inputs: dict) -> str:
    return _digest(identity(inputs))


def generation_key(inputs: dict) -> str:
    """The run key without the amounts (`num_instructions`, `num_triplets`, `max_rounds`) and the filters that ran:
    runs that share it send the same prompts, one run's being a prefix of a larger one's (a response prompt that
    differs, because other filters kept other instructions before it, is recognised by its digest and generated
    again). Also the way to a run made before the key left out paths and defaults: its stored inputs give the
    same identity."""
    return _digest({k: v for k, v in identity(inputs, AMOUNTS).items() if k != "filters"})


def _inputs_of(path: Path) -> Optional[dict]:
    """A run directory's inputs: from its manifest when finished, else from the inputs.json written at its start."""
    if (path / MANIFEST).is_file():
        return Manifest.load(path).inputs
    return read_json(path / INPUTS) if (path / INPUTS).is_file() else None


def extend_from(run_dir: Path, inputs: dict) -> list[str]:
    """Seed a run with the raw rounds and chunks of every other run, finished or not, that differs from it only in
    its amounts (hard links; files the run already has are kept): raising `num_instructions` extends a run
    instead of starting it again. Returns the names of the runs it took files from."""
    key = generation_key(inputs)
    sources = [
        p
        for p in sorted(run_dir.parent.iterdir())
        if p.is_dir() and p != run_dir and (other := _inputs_of(p)) is not None and generation_key(other) == key
    ]
    used = []
    for source in sources:
        files = sorted(source.glob("instructions/*.jsonl")) + sorted(source.glob("responses/*.jsonl"))
        missing = [(path, run_dir / path.relative_to(source)) for path in files]
        missing = [(path, target) for path, target in missing if not target.exists()]
        for path, target in missing:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:  # a file system without hard links
                write_bytes(target, path.read_bytes())
        if missing:
            used.append(source.name)
    return used


def is_run(path: Path) -> bool:
    """A run directory, finished or not: its inputs.json is written when it starts, its manifest when it ends."""
    return path.is_dir() and ((path / MANIFEST).is_file() or (path / INPUTS).is_file())


def _last_change(path: Path) -> float:
    return max([path.stat().st_mtime] + [p.stat().st_mtime for p in path.rglob("*") if p.is_file()])


def runs_in(folder: Path) -> list[dict]:
    """The runs of a runs folder, newest first: {dir, finished, changed (a timestamp), counts (a finished run's
    funnel, else None), rounds and chunks written}."""
    found = []
    for path in (p for p in folder.iterdir() if is_run(p)) if folder.is_dir() else ():
        manifest = Manifest.load(path) if (path / MANIFEST).is_file() else None
        found.append(
            {
                "dir": path,
                "finished": is_complete(path),
                "changed": _last_change(path),
                "counts": manifest.counts if manifest else None,
                "rounds": len(list(path.glob("instructions/*.jsonl"))),
                "chunks": len(list(path.glob("responses/*.jsonl"))),
            }
        )
    return sorted(found, key=lambda run: -run["changed"])


@contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """Make this process the run directory's only writer: wait (flock) while another one holds it.

    The kernel drops the lock when its holder exits, killed or not, so a waiter never waits for the dead.
    Temporary files a killed writer left behind are removed once the lock is ours.
    """
    make_dir(path.parent)
    with open(path.parent / f".{path.name}.lock", "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            print(f"selfspec: {path} is being generated by {holder}; waiting for it to finish", file=sys.stderr)
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        for stale in path.rglob(".*.tmp") if path.is_dir() else ():
            stale.unlink()
        yield
