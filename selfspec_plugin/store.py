"""Run directories: keyed by a hash of everything that shapes the output; written atomically.

Layout of one run:  <runs_dir>/<key>/
    instructions/round-00000.jsonl   raw brainstorming completions, one file per round
    responses/chunk-00000.jsonl      raw responses, one file per chunk
    data.jsonl                       the kept triplets (alpaca fields + id)
    rejected.jsonl                   everything dropped, with its reason
    inputs.json                      what the run key hashes, written when the run starts
    manifest.json                    inputs' hashes, params, counts, timings: written last = run complete
A run that differs from another (finished or not) only in its amounts starts from its rounds and chunks (hard links).
<runs_dir>/.<key>.lock              held (flock) by the one process generating the run; others wait
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

from . import plugins
from .config import SelfSpecConfig, VllmOptions
from .errors import SelfSpecError
from .prompts import templates_hash

MANIFEST = "manifest.json"
INPUTS = "inputs.json"  # written when a run starts: lets a later run with other amounts find it unfinished
UMASK = os.umask(0o22)
os.umask(UMASK)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DATA = "data.jsonl"
AMOUNTS = ("num_instructions", "max_rounds")  # how much is generated: a larger run extends a smaller one


@dataclass(frozen=True)
class Job:
    """A resolved generation job: settings, generator model, and where its runs live."""

    config: SelfSpecConfig
    model: str
    runs_dir: Path
    recipe: Optional[dict] = None  # the recipe file it came from (recipe.provenance): recorded, not part of the key

    def to_json(self) -> str:
        return json.dumps({"config": self.config.model_dump(), "model": self.model, "runs_dir": str(self.runs_dir),
                           "recipe": self.recipe})

    @classmethod
    def from_json(cls, text: str) -> "Job":
        raw = json.loads(text)
        return cls(SelfSpecConfig(**raw["config"]), raw["model"], Path(raw["runs_dir"]), raw.get("recipe"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")  # as huggingface_hub reads it
        if HUB_ID.match(model) and (not offline or _hub_config(model)):
            return {"hub_id": model}
        raise SelfSpecError(
            f"model not found: {model!r} is not a local model directory"
            + (" and the hub is offline (HF_HUB_OFFLINE=1)" if HUB_ID.match(model) else "")
            + " (for the demo model run `selfspec fetch-demo-model`)"
        )
    if not (path / "config.json").is_file():
        raise SelfSpecError(f"model directory {model!r} has no config.json")
    small = {name: sha256_file(path / name) for name in ("config.json", "tokenizer.json", "tokenizer_config.json")
             if (path / name).is_file()}
    weights = {p.name: weights_sha256(p) for p in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))}
    return {"files": small, "weights": weights}


def run_inputs(job: Job) -> dict:
    """Everything that shapes the output, as plain data."""
    not_generated = {"runs_dir", "chunk_size", "trust_remote_code", "eval", "eval_after_train", "rounds", "ray",
                     "seeds_sha256", "corpus_sha256", "keep_datasets"}
    settings = job.config.model_dump(exclude=not_generated)
    # options that change how fast or where, not what is generated (and secrets), as declared: not in the key
    backend = plugins.backends().get(job.config.backend)
    fast = getattr(backend, "not_output", ())
    settings["vllm"] = {k: v for k, v in settings["vllm"].items() if k not in VllmOptions.not_output}
    settings["backend_options"] = {k: v for k, v in settings["backend_options"].items() if k not in fast}
    remote = getattr(backend, "remote_model", False) and not Path(job.model).is_dir()  # a name on a server
    previous = job.config.previous_round
    return {
        "seeds_sha256": pinned_sha256(job.config.seeds, "seeds", job.config.seeds_sha256),
        "corpus_sha256": pinned_sha256(job.config.corpus, "corpus", job.config.corpus_sha256) if job.config.corpus else None,
        "model": {"served": job.model} if remote else model_fingerprint(job.model),
        "templates": templates_hash(),
        "settings": settings,
        **({"previous_adapter_sha256": adapter_fingerprint(previous.adapter), "previous_run": Path(previous.run_dir).name}
           if previous else {}),
    }


def pinned_sha256(path: str, key: str, pinned: Optional[str], pin_key: Optional[str] = None) -> str:
    """The file's sha256; a recipe that pinned another one stops here, before any engine starts or file is written."""
    actual = sha256_file(check_file(Path(path), f"selfspec.{key}"))
    if pinned and pinned.lower() != actual:
        raise SelfSpecError(f"selfspec.{pin_key or key + '_sha256'}: {path} has changed since the recipe pinned it: "
                            f"expected sha256 {pinned.lower()}, the file has {actual}")
    return actual


# Settings that name files (whose contents are hashed instead: a recipe moved, packed or unpacked elsewhere keeps
# its key) and the settings left at their defaults (a new setting whose default keeps the old behaviour leaves
# every key as it was) are not part of a run's identity.
PATHS = ("seeds", "corpus", "previous_round")
DEFAULTS = SelfSpecConfig(seeds="").model_dump()


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
    return {**inputs, "settings": _changed(settings, DEFAULTS)}


def _digest(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def run_key(inputs: dict) -> str:
    return _digest(identity(inputs))


def generation_key(inputs: dict) -> str:
    """The run key without the amounts (`num_instructions`, `max_rounds`): runs that share it generate the same
    rounds and chunks, one run's being a prefix of a larger one's. Also the way to a run made before the key
    left out paths and defaults: its stored inputs give the same identity."""
    return _digest(identity(inputs, AMOUNTS))


def _inputs_of(path: Path) -> Optional[dict]:
    """A run directory's inputs: from its manifest when finished, else from the inputs.json written at its start."""
    for name in (MANIFEST, INPUTS):
        if (path / name).is_file():
            found = read_json(path / name)
            return found.get("inputs", found) if name == MANIFEST else found
    return None


def extend_from(run_dir: Path, inputs: dict) -> list[str]:
    """Seed a run with the raw rounds and chunks of every other run, finished or not, that differs from it only in
    its amounts (hard links; files the run already has are kept): raising `num_instructions` extends a run
    instead of starting it again. Returns the names of the runs it took files from."""
    key = generation_key(inputs)
    sources = [p for p in sorted(run_dir.parent.iterdir()) if p.is_dir() and p != run_dir
               and (other := _inputs_of(p)) is not None and generation_key(other) == key]
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
                _atomic_write(target, path.read_bytes())
        if missing:
            used.append(source.name)
    return used


def run_dir(job: Job) -> Path:
    return job.runs_dir / run_key(run_inputs(job))


def is_complete(path: Path) -> bool:
    return (path / MANIFEST).is_file() and (path / DATA).is_file()


def make_dir(path: Path) -> Path:
    """mkdir -p, or a SelfSpecError naming the folder and why (a read-only file system, no permission, ...)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SelfSpecError(f"cannot create the folder {path}: {exc.strerror or exc} (set output_dir or "
                            "selfspec.runs_dir to a writable place)") from None
    return path


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


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, rename: readers see the old file or the new one."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SelfSpecError(f"could not write {path}: {exc.strerror or exc}; the files written before it are "
                                "intact and a rerun resumes from them") from exc
        raise


# json.dumps leaves these raw, and str.splitlines (and some editors) break lines at them: escape them so that
# every reader sees one record per line. (Control characters below U+0020 are already escaped by json.)
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    _atomic_write(path, "".join(json.dumps(r, ensure_ascii=False).translate(_LINE_BREAKS) + "\n" for r in records).encode())


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, text.encode())


def write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, data)


def write_json(path: Path, obj: dict) -> None:
    _atomic_write(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())


def check_file(path: Path, what: str = "file") -> Path:
    """`path` as a readable file, or a SelfSpecError that says what is wrong with it (`what` names the setting)."""
    path = Path(path)
    if path.is_dir():
        raise SelfSpecError(f"{what}: {path} is a directory, expected a file")
    if not path.exists():
        raise SelfSpecError(f"{what}: file not found: {path}")
    if not path.is_file():
        raise SelfSpecError(f"{what}: {path} is not a regular file")
    return path


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, a leading byte-order mark (Notepad, Excel) dropped. A missing,
    unreadable or non-UTF-8 file raises SelfSpecError naming the line and column."""
    lineno = 0
    try:
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    column = len(raw[: exc.start].decode("utf-8-sig" if lineno == 1 else "utf-8", "replace")) + 1
                    raise SelfSpecError(f"{path}:{lineno}:{column}: not UTF-8 text ({exc.reason}, byte "
                                        f"{raw[exc.start]:#04x}); save the file as UTF-8") from None
    except FileNotFoundError:
        raise SelfSpecError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise SelfSpecError(f"{path} is a directory, expected a file") from None
    except OSError as exc:
        raise SelfSpecError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_text(path: Path) -> str:
    """A whole UTF-8 text file (see text_lines)."""
    return "".join(line for _, line in text_lines(path))


def jsonl_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a jsonl file; any problem names file:line."""
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            hint = ("; is this CSV? a .jsonl file holds one JSON object per line"
                    if exc.pos == 0 and "," in line and not line.lstrip().startswith(("{", "[", '"')) else "")
            raise SelfSpecError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}){hint}") from None
        except RecursionError:
            raise SelfSpecError(f"{path}:{lineno}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise SelfSpecError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8-sig"))


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
