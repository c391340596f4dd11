"""A recipe as a file that travels between teams.

The input paths of a recipe's `selfspec:` block (seeds, corpus, eval task files, a previous round's run and
adapter) resolve against the recipe's own folder, so a recipe works from any working directory; Axolotl's own
keys (base_model, output_dir, datasets, ...) and `selfspec.runs_dir` keep Axolotl's rule (the current
directory). Optional pins (`seeds_sha256`, `corpus_sha256`, `eval.tasks_sha256`) stop a run whose files changed.
"""

from __future__ import annotations

from pathlib import Path

from . import fileio, registry, rundirs, yamltext
from .backends.base import ability
from .config import SelfSpecConfig
from .corpus import corpus_digest, corpus_files, read_corpus
from .errors import SelfSpecError
from .eval.tasks import spec_path
from .pipeline import filter_specs
from .provenance import BUNDLE, matched_steps, versions
from .runner import make_job
from .seeds import check_seeds, few_seeds, load_seeds, token_cap_warnings


def _resolve(path: str, folder: Path) -> str:
    return path if Path(path).is_absolute() else str(folder / path)


def task_path(spec: str) -> tuple[str, str]:
    """An eval task spec as (prefix, path): `pubmedqa:DIR` -> ('pubmedqa:', 'DIR'), a task file -> ('', FILE)."""
    return spec_path(spec)


def _resolve_task(spec, folder: Path):
    if not isinstance(spec, str):
        return spec
    prefix, path = task_path(spec)
    return prefix + _resolve(path, folder)


def input_paths(block: dict) -> list[tuple[str, str]]:
    """(key, path as written) of every input path of a `selfspec:` block, in the order they are read."""
    found = [(key, block[key]) for key in ("seeds", "corpus") if isinstance(block.get(key), str)]
    tasks = (block.get("eval") or {}).get("tasks") or []
    found += [(f"eval.tasks[{i}]", task_path(spec)[1]) for i, spec in enumerate(tasks) if isinstance(spec, str)]
    previous = block.get("previous_round") or {}
    found += [
        (f"previous_round.{key}", previous[key]) for key in ("run_dir", "adapter") if isinstance(previous.get(key), str)
    ]
    return found


def _is_pattern_with_files(path: str) -> bool:
    """A corpus glob (`docs/**/*.pdf`) that matches a file."""
    import glob

    return glob.has_magic(path) and any(Path(p).is_file() for p in glob.iglob(path, recursive=True))


def resolve_paths(block: dict, folder: Path) -> tuple[dict, list[str]]:
    """The block with its input paths made absolute against `folder`, and one problem per path not found (naming
    the key, the path as written and where it was looked for)."""
    out = {**block}
    problems = []
    for key, path in input_paths(block):
        resolved = _resolve(path, folder)
        if not Path(resolved).exists() and not (key == "corpus" and _is_pattern_with_files(resolved)):
            where = "" if resolved == path else f" (resolved against the recipe's folder: {resolved})"
            problems.append(f"selfspec.{key}: file not found: {path}{where}")
    for key in ("seeds", "corpus"):
        if isinstance(out.get(key), str):
            out[key] = _resolve(out[key], folder)
    if isinstance(out.get("eval"), dict):
        block_eval = {**out["eval"]}
        if isinstance(block_eval.get("tasks"), list):
            block_eval["tasks"] = [_resolve_task(spec, folder) for spec in block_eval["tasks"]]
        if isinstance(block_eval.get("tasks_sha256"), dict):  # the pins follow their files
            block_eval["tasks_sha256"] = {_resolve_task(k, folder): v for k, v in block_eval["tasks_sha256"].items()}
        out["eval"] = block_eval
    if isinstance(out.get("previous_round"), dict):
        out["previous_round"] = {
            k: _resolve(v, folder) if k in ("run_dir", "adapter") and isinstance(v, str) else v
            for k, v in out["previous_round"].items()
        }
    return out, problems


def read(path: str | Path) -> dict:
    """An Axolotl YAML (safe-loaded) with a `selfspec:` block, as written."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise SelfSpecError(f"config not found: {path}")
    try:
        raw = yaml.safe_load(fileio.read_text(path))
    except yaml.YAMLError as exc:
        raise SelfSpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("selfspec"), dict):
        raise SelfSpecError(f"{path}: no `selfspec:` block")
    return raw


def resolve(block: dict, folder: Path) -> dict:
    """`resolve_paths`, stopping on every missing generation input at once (a missing eval task file stops
    `selfspec eval` only)."""
    out, problems = resolve_paths(block, folder)
    problems = [p for p in problems if not p.startswith("selfspec.eval.")]
    if problems:
        raise SelfSpecError("\n".join(problems))
    return out


def _nested_model(model, loc: tuple) -> type | None:
    """The pydantic model that holds the last key of `loc` (`("eval", "x")` -> EvalOptions), or None."""
    import typing

    from pydantic import BaseModel

    for name in loc:
        field = model.model_fields.get(name) if isinstance(name, str) else None
        if field is None:
            return None
        # Optional[Model] and Model alike: the first pydantic model among the annotation's arguments
        candidates = (field.annotation, *typing.get_args(field.annotation))
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def _unknown_key(loc: tuple, root, prefix: tuple = ()) -> str:
    """An unknown key's message, with the closest known key of its own (nested) model: a typo is the usual cause."""
    import difflib

    model = _nested_model(root, loc[:-1])
    known = list(model.model_fields) if model else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean `{close[0]}`?"
    full = prefix + loc
    where = "selfspec." + ".".join(map(str, full[:-1])) if len(full) > 1 else "selfspec"
    return f"unknown key (the keys of {where}: {', '.join(known)})" if known else "unknown key"


def field_errors(exc, root=None, prefix: tuple = ()) -> list[str]:
    """A pydantic ValidationError of the `selfspec:` block (or of `root`, the model of its block `prefix`, such as a
    backend's options): one `selfspec.<field>: <why>` line per field, each field once (a value that fails several
    ways is reported by its first reason)."""
    lines: dict[str, str] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        field = ".".join(map(str, prefix + loc)) or "(block)"
        why = _unknown_key(loc, root or SelfSpecConfig, prefix) if error["type"] == "extra_forbidden" else error["msg"]
        lines.setdefault(field, f"selfspec.{field}: {why}")
    return list(lines.values())


def _option_block_problems(block: dict) -> list[str]:
    """The blocks that backends own (`vllm:`, `ray:`), each against its owner's options model, whatever the chosen
    backend: a typo in a block that is not used yet is still a typo."""
    from pydantic import ValidationError

    problems = []
    for key, owner in registry.option_blocks().items():
        model = ability(owner, "Options")
        if model is None or not isinstance(block.get(key), dict):
            continue
        try:
            model(**block[key])
        except ValidationError as exc:
            problems += field_errors(exc, model, (key,))
    return problems


def _registered_names(block: dict) -> list[str]:
    """The block's plugin names (backend, retriever, filters) that no installed plugin registers: reported with
    its field errors, not one run later."""
    checks = [
        lambda kind=kind: registry.factory(kind, block[kind], getattr(registry, f"{kind}s")())
        for kind in ("backend", "retriever")
        if isinstance(block.get(kind), str)
    ]
    if isinstance(block.get("filters"), list):
        checks.append(lambda: filter_specs(block["filters"]))
    problems = []
    for check in checks:
        try:
            check()
        except SelfSpecError as exc:
            problems.append(str(exc))
    return problems


def block_problems(block: dict) -> list[str]:
    """Every problem of a `selfspec:` block in one pass, each once: its fields (an unknown key with the closest
    known one) and the plugin names it uses."""
    from pydantic import ValidationError

    try:
        cfg = SelfSpecConfig(**block)
    except ValidationError as exc:
        return field_errors(exc) + _option_block_problems(block) + _registered_names(block)
    problems = _option_block_problems(block) + _registered_names(block)
    if not problems:
        try:  # backend_options, against the backend's own options
            registry.backend_settings(cfg)
        except SelfSpecError as exc:
            problems.append(str(exc))
    return problems


def invalid_block(where: str, problems: list[str]) -> SelfSpecError:
    """The one error of a bad block: every problem, one indented line each."""
    return SelfSpecError(
        f"{where}: {len(problems)} problem(s) in the selfspec block:\n" + "\n".join(f"  {p}" for p in problems)
    )


def load(path: str | Path) -> dict:
    """A recipe, its `selfspec:` block validated and its input paths resolved against its folder: every bad field
    and every missing file named in one error."""
    raw = read(path)
    block, missing = resolve_paths(raw["selfspec"], Path(path).absolute().parent)
    problems = block_problems(raw["selfspec"]) + [m for m in missing if not m.startswith("selfspec.eval.")]
    if problems:
        raise invalid_block(str(path), problems)
    return {**raw, "selfspec": block}


# ---- pack / unpack ------------------------------------------------------------------------------------------


def _bundle_files(block: dict, with_corpus: bool) -> tuple[dict, dict[str, Path]]:
    """The `selfspec:` block as it reads inside a bundle (paths to the bundled files, pins filled in), and the
    files to bundle (name inside the bundle -> file here)."""
    out, files = {**block}, {}
    if out.get("previous_round"):
        raise SelfSpecError("selfspec.previous_round: this is a round of `selfspec iterate`; pack the round-1 recipe")
    for key, folder in (("seeds", "seeds"), ("corpus", "corpus")):
        if key == "corpus" and out.get(key) and not Path(out[key]).is_file():  # a folder or glob: its files
            spec = out[key]
            name = Path(spec).name if Path(spec).is_dir() else "files"
            pin = corpus_digest(spec, out.get("corpus_text_field", "text"))
            out[key], out[f"{key}_sha256"] = f"{folder}/{name}", pin
            if with_corpus:
                files.update({f"{folder}/{name}/{rel}": path for path, rel in corpus_files(spec)})
        elif out.get(key):
            source = Path(out[key])
            out[key], out[f"{key}_sha256"] = f"{folder}/{source.name}", fileio.sha256_file(source)
            if key == "seeds" or with_corpus:
                files[out[key]] = source
    block_eval = {**(out.get("eval") or {})}
    tasks, pins = [], {}
    for spec in block_eval.get("tasks") or []:
        prefix, path = task_path(spec)
        if prefix:  # a public benchmark's folder: not bundled; the receiver supplies it (absolute path kept)
            tasks.append(spec)
            continue
        name = f"eval/{Path(path).name}"
        if name in files:
            raise SelfSpecError(
                f"selfspec.eval.tasks: two task files are named {Path(path).name}; rename one to pack them"
            )
        tasks.append(name)
        files[name], pins[name] = Path(path), fileio.sha256_file(Path(path))
    if tasks:
        out["eval"] = {**block_eval, "tasks": tasks, "tasks_sha256": pins}
    return out, files


# Keys that name a place on the sender's machine: kept as written, but an absolute one makes a receiver on the same
# machine read the sender's model, or write into the sender's folders.
MACHINE_PATHS = (
    ("base_model",),
    ("output_dir",),
    ("dataset_prepared_path",),
    ("selfspec", "model"),
    ("selfspec", "runs_dir"),
)


def absolute_paths(raw: dict) -> list[tuple[str, ...]]:
    """The MACHINE_PATHS of a recipe (as written) that are absolute."""
    found = []
    for keys in MACHINE_PATHS:
        value = raw.get(keys[0]) if len(keys) == 1 else (raw.get(keys[0]) or {}).get(keys[1])
        if isinstance(value, str) and Path(value).is_absolute():
            found.append(keys)
    return found


def _without(data: dict, keys: tuple[str, ...]) -> dict:
    if len(keys) == 1:
        return {k: v for k, v in data.items() if k != keys[0]}
    return {**data, keys[0]: _without(data[keys[0]], keys[1:])}


def packed_text(text: str, written: dict, block: dict, drop: list[tuple[str, ...]]) -> tuple[str, bool]:
    """The bundle's recipe.yml: the recipe's own text with the packed values set (its comments kept), or, where its
    layout is not one yamltext edits, re-dumped; and whether the comments were kept."""
    import yaml

    want = {**written, "selfspec": block}
    for keys in drop:
        want = _without(want, keys)
    mine = written["selfspec"]
    changes = [(("selfspec", key), block[key], None) for key in ("seeds", "corpus") if key in block]
    changes += [
        (("selfspec", f"{key}_sha256"), block[f"{key}_sha256"], key) for key in ("seeds", "corpus") if key in block
    ]
    if "eval" in block:
        tasks = block["eval"]["tasks"]
        changes += [(("selfspec", "eval", "tasks", i), spec, None) for i, spec in enumerate(tasks)]
        changes += [(("selfspec", "eval", "tasks_sha256"), block["eval"]["tasks_sha256"], "tasks")]
    changes = [c for c in changes if _value_at(mine, c[0][1:]) != c[1]]
    edited = yamltext.edit(text, changes, drop)
    if edited is not None and yaml.safe_load(edited) == want:
        return edited, True
    return yaml.safe_dump(want, sort_keys=False), False


def _value_at(data, keys: tuple):
    for key in keys:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return None
    return data


def pack(
    path: str | Path,
    bundle: str | Path,
    with_corpus: bool = True,
    drop_absolute: bool = False,
    warnings: list[str] | None = None,
) -> Path:
    """`selfspec recipe pack`: the recipe (paths rewritten, pins filled in, its comments kept), its files and the
    versions packed with, as one plain .tar.gz (written whole or not at all). Absolute machine paths are warnings
    (appended to `warnings`, else printed), or commented out with `drop_absolute`."""
    import io
    import json
    import sys
    import tarfile
    from datetime import datetime, timezone

    raw = load(path)
    block, files = _bundle_files(raw["selfspec"], with_corpus)
    bundle = Path(bundle)
    written = read(path)
    absolute = absolute_paths(written)
    found = [
        f"{'.'.join(keys)}: {_value_at(written, keys)} is an absolute path: "
        + (
            "left out of the bundle (commented out) for the receiver to set"
            if drop_absolute
            else "a receiver on this machine would use your folder (--drop-absolute-paths leaves it out)"
        )
        for keys in absolute
    ]
    recipe, kept = packed_text(fileio.read_text(Path(path)), written, block, absolute if drop_absolute else [])
    if not kept:
        found.append(f"{path}: its layout is not one `recipe pack` edits in place; re-written without its comments")
    recipe = f"# Packed by `selfspec recipe pack` from {Path(path).name}; paths are relative to this file.\n" + recipe
    meta = {
        "bundle": bundle.name,
        "recipe": Path(path).name,
        "packed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "files": {name: fileio.sha256_file(source) for name, source in files.items()},
        "corpus_included": bool(block.get("corpus")) and with_corpus,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("recipe.yml", recipe.encode()), (BUNDLE, json.dumps(meta, indent=2).encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(datetime.now().timestamp()), 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, source in files.items():
            tar.add(source, arcname=name, recursive=False)
    fileio.make_dir(bundle.absolute().parent)
    fileio.write_bytes(bundle, buffer.getvalue())
    if warnings is None:
        for line in found:
            print(f"selfspec: warning: {line}", file=sys.stderr)
    else:
        warnings += found
    return bundle


def _unsafe(member) -> str | None:
    parts = Path(member.name).parts
    if member.name.startswith(("/", "\\")) or Path(member.name).is_absolute():
        return "an absolute path"
    if ".." in parts:
        return "a path that leaves the folder (..)"
    if member.issym() or member.islnk():
        return "a link"
    if not (member.isfile() or member.isdir()):
        return "not a plain file"
    return None


def unpack(bundle: str | Path, dest: str | Path) -> Path:
    """`selfspec recipe unpack`: a bundle into an empty (or new) folder; refuses an archive with absolute paths,
    `..`, links or special files before writing anything. Returns the recipe's path."""
    import tarfile

    bundle, dest = Path(fileio.check_file(Path(bundle), "bundle")), Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise SelfSpecError(f"{dest}: not empty; unpack into a new folder")
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            members = tar.getmembers()
            bad = [f"{m.name!r} ({why})" for m in members if (why := _unsafe(m))]
            if bad:
                raise SelfSpecError(f"{bundle}: refused, the archive holds " + ", ".join(bad))
            if "recipe.yml" not in {m.name for m in members}:
                raise SelfSpecError(f"{bundle}: no recipe.yml; not a bundle made by `selfspec recipe pack`")
            fileio.make_dir(dest)
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise SelfSpecError(f"{bundle}: not a readable .tar.gz ({exc})") from None
    return dest / "recipe.yml"


# ---- check --------------------------------------------------------------------------------------------------


def _axolotl_problems(raw: dict) -> tuple[list[str], str]:
    """Axolotl's own validation of the whole config, with the plugin, on this machine's capabilities."""
    import copy

    from axolotl.cli.config import gpu_capabilities, prepare_plugins
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault
    from pydantic import ValidationError

    capabilities, env = gpu_capabilities()
    machine = f"{capabilities['compute_capability'] or 'no GPU'}, torch {env['torch_version']}"
    # The `selfspec:` block is checked by block_problems, once; Axolotl gets a valid stand-in for it, so that its
    # own keys are still validated and no problem of the block is reported twice.
    cfg = DictDefault({**copy.deepcopy(raw), "selfspec": {"seeds": "-"}})
    try:
        prepare_plugins(cfg)
        validate_config(cfg, capabilities, env)
    except ValidationError as exc:  # one line per field, without pydantic's links
        return [f"axolotl: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()][:12], machine
    except Exception as exc:  # Axolotl's ValueErrors: each line a problem
        return [f"axolotl: {line.strip()}" for line in str(exc).splitlines() if line.strip()][:12], machine
    return [], machine


def _size(cfg) -> str:
    """Bounds on the work: brainstorm prompts (each yields at most `instruction_items` instructions) and tokens."""
    if cfg.seeds_only:
        return "seeds only: the seed tasks are the training data (no generation, no engine)"
    if cfg.num_triplets:  # the rounds follow the pass rate: only the floor and the round cap are known
        most = cfg.max_rounds * cfg.prompts_per_round
        return (
            f"{cfg.num_triplets:,} triplets: at least {-(-cfg.num_triplets // cfg.instruction_items):,} brainstorm "
            f"prompts, as many more as the filters' pass rate needs, at most {most:,} (max_rounds x prompts_per_round)"
        )
    least = -(-cfg.num_instructions // cfg.instruction_items)
    most = cfg.max_rounds * cfg.prompts_per_round
    answers = cfg.num_instructions - 1 + cfg.prompts_per_round * cfg.instruction_items  # the last round's surplus too
    tokens = most * cfg.instruction_max_tokens + answers * cfg.response_max_tokens
    return (
        f"{cfg.num_instructions:,} instructions: {least:,} to {most:,} brainstorm prompts, "
        f"up to {answers:,} response prompts, at most {tokens:,} generated tokens"
    )


def check(path: str | Path) -> list[tuple[str, str]]:
    """`selfspec recipe check RECIPE.yml|BUNDLE.tar.gz`: (status, line) pairs, status one of ok, warn, FAIL, info.
    Never starts an engine."""
    import tempfile

    path = Path(path)
    if path.name.endswith((".tar.gz", ".tgz")):
        with tempfile.TemporaryDirectory(prefix="selfspec-check-") as tmp:
            return [("info", f"bundle {path}")] + check(unpack(path, Path(tmp) / "bundle"))
    return _check_recipe(path)


def _check_recipe(path: Path) -> list[tuple[str, str]]:
    raw = read(path)
    lines: list[tuple[str, str]] = [("info", f"recipe {path.absolute()}")]
    problems, machine = _axolotl_problems(raw)
    lines += [("FAIL", p) for p in problems] or [
        ("ok", f"axolotl: the whole config validates (this machine: {machine})")
    ]
    block, missing = resolve_paths(raw["selfspec"], path.absolute().parent)
    lines += [("warn" if m.startswith("selfspec.eval.") else "FAIL", m) for m in missing]
    problems = block_problems(raw["selfspec"])
    if problems:
        return lines + [("FAIL", p) for p in problems]
    cfg = SelfSpecConfig(**block)
    pins = {
        "seeds": cfg.seeds_sha256,
        "corpus": cfg.corpus_sha256,
        **{f"eval.tasks[{i}]": cfg.eval.tasks_sha256.get(s) for i, s in enumerate(cfg.eval.tasks)},
    }
    resolved_paths = dict(input_paths(block))
    for key, written in input_paths(raw["selfspec"]):
        resolved = resolved_paths[key]
        folder_corpus = key == "corpus" and (Path(resolved).is_dir() or _is_pattern_with_files(resolved))
        if Path(resolved).is_dir() and not folder_corpus:  # a benchmark's folder (pubmedqa:DIR) is fine
            lines.append(
                ("ok", f"selfspec.{key}: {written} -> {resolved} (a folder)")
                if key.startswith("eval.")
                else ("FAIL", f"selfspec.{key}: {resolved} is a directory, expected a file")
            )
        if not Path(resolved).is_file() and not folder_corpus:
            continue
        pinned = pins.get(key)
        try:  # the run's own pin check, reported under the path's key
            actual = rundirs.pinned_sha256(resolved, key, pinned, pin_key=key, text_field=cfg.corpus_text_field)
        except SelfSpecError as exc:
            lines.append(("FAIL", str(exc)))
            continue
        if folder_corpus:
            lines += _corpus_lines(resolved, cfg.corpus_text_field)
        lines.append(
            (
                "ok",
                f"selfspec.{key}: {written} -> {resolved} (sha256 {actual[:12]}…, "
                f"{'matches its pin' if pinned else 'not pinned'})",
            )
        )
    if Path(cfg.seeds).is_file():
        errors, warnings, types = check_seeds(cfg.seeds)
        lines += [("FAIL", f"seeds: {e}") for e in errors] or [
            ("ok", f"seeds check: {sum(types.values())} seeds, {len(types)} task types, {len(warnings)} warning(s)")
        ]
        lines += [("warn", f"seeds: {w}") for w in warnings]
    try:  # (its name is registered: block_problems)
        registry.require(registry.backend(cfg.backend), f"selfspec.backend: {cfg.backend!r}")
        lines.append(("ok", f"backend: {cfg.backend} is installed"))
    except SelfSpecError as exc:
        lines.append(("FAIL", str(exc)))
    lines += _versions_lines(path.parent / BUNDLE)
    job = make_job(cfg, raw.get("base_model"), raw.get("output_dir"))
    try:
        key = job.key
        where = "a local directory" if Path(job.model).is_dir() else "named (hub cache)"
        lines += [("ok", f"model: {job.model} ({where})"), ("ok", f"run key: {key} (runs in {job.runs_dir / key})")]
    except SelfSpecError as exc:
        lines.append(("FAIL", str(exc)))
    lines += [("warn", w) for w in seed_warnings(job, count=False)]  # (the count: by the seeds check above)
    return lines + [("info", f"size: {_size(cfg)}")] + _steps_lines(cfg.match_steps_of)


def _steps_lines(output_dir: str | None) -> list[tuple[str, str]]:
    """`match_steps_of`: how many optimizer steps this run will take, or why that is not known yet (a warning: the
    arm it matches is often trained after the recipes are written)."""
    if not output_dir:
        return []
    try:
        steps = matched_steps(output_dir)
    except SelfSpecError as exc:
        return [("warn", str(exc))]
    return [("ok", f"match_steps_of: {output_dir} trained {steps:,} optimizer steps; this run takes as many")]


def _corpus_lines(spec: str, text_field: str) -> list[tuple[str, str]]:
    """A folder corpus in brief (`selfspec corpus inspect` tells more): files read, sections, each skipped file."""
    found = read_corpus(spec, text_field)  # (read once already for the pin: an error was reported there)
    counts = f"{len(found.files)} file(s) read, {len(found.sections)} section(s), {len(found.skipped)} skipped"
    return [("ok", f"corpus: {counts}")] + [("warn", f"corpus: skipped {name}: {why}") for name, why in found.skipped]


def seed_warnings(job, count: bool = True) -> list[str]:
    """What a run's seeds say about its settings before it starts: too few of them (with `count`), or longer than
    its token caps in the generator's own tokens (when its tokenizer is in a local model folder). Bad seeds are
    errors elsewhere."""
    cfg = job.config
    try:
        seeds = load_seeds(cfg.seeds, [])
    except SelfSpecError:
        return []
    found = few_seeds(cfg.seeds, len(seeds)) if count else []
    tokenizer = _tokenizer(job.model, cfg.trust_remote_code)
    if tokenizer is not None:
        found += token_cap_warnings(
            seeds, lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]), cfg
        )
    return found


def _tokenizer(model: str, trust_remote_code: bool):
    """The model folder's tokenizer; None for a model named on a server or a folder without one (the check is
    advice: the run itself says what is wrong with its model)."""
    if not Path(model).is_dir():
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _versions_lines(marker: Path) -> list[tuple[str, str]]:
    """The versions a bundle was packed with against the installed ones (a drift is a warning, not a stop)."""
    if not marker.is_file():
        return []
    packed, here = fileio.read_json(marker).get("versions", {}), versions()
    drift = [f"{d} {v} packed, {here.get(d, 'not installed')} here" for d, v in packed.items() if here.get(d) != v]
    return [("warn", f"versions: {'; '.join(drift)}")] if drift else [("ok", "versions: as packed")]
