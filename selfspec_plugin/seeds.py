"""Seed tasks: the handful of expert-written (instruction, input, output) triplets that start a run."""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import SelfSpecError
from .fileio import check_file, jsonl_objects, read_text

REQUIRED = ("instruction", "output")
OPTIONAL = ("id", "task_type", "input")


def parse_seed(obj: object, where: str, index: int) -> dict:
    """Validate one decoded seed object; return it as a plain record `{id, task_type, instruction, input, output}`."""
    if not isinstance(obj, dict):
        raise SelfSpecError(f"{where}: a seed must be a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise SelfSpecError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(OPTIONAL + REQUIRED)})")
    for field in REQUIRED:
        if field not in obj:
            raise SelfSpecError(f"{where}: missing field {field!r}")
    for field in ("instruction", "input", "output", "task_type"):
        if field in obj and not isinstance(obj[field], str):
            raise SelfSpecError(f"{where}: field {field!r} must be a string, got {type(obj[field]).__name__}")
    for field in REQUIRED:
        if not obj[field].strip():
            raise SelfSpecError(f"{where}: field {field!r} is empty")
    seed_id = obj.get("id", f"seed-{index}")
    if not isinstance(seed_id, (str, int)) or isinstance(seed_id, bool):
        raise SelfSpecError(f"{where}: field 'id' must be a string or an integer")
    return {
        "id": str(seed_id),
        "task_type": obj.get("task_type", ""),
        "instruction": obj["instruction"].strip(),
        "input": obj.get("input", "").strip(),
        "output": obj["output"].strip(),
    }


def _jsonl_objects(path: Path):
    for lineno, obj in jsonl_objects(path):
        yield f"{path}:{lineno}", lineno, obj


def _yaml_objects(path: Path):
    """A YAML list of seed mappings; positions are reported as file:line of each item."""
    import yaml

    text = read_text(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and not isinstance(root, yaml.SequenceNode):
            raise SelfSpecError(f"{path}:{root.start_mark.line + 1}: a YAML seeds file must be a list of tasks")
        items = [
            (n.start_mark.line + 1, yaml.SafeLoader(yaml.serialize(n)).get_single_data())
            for n in (root.value if root else [])
        ]
    except (yaml.YAMLError, RecursionError) as exc:
        raise SelfSpecError(f"{path}: not valid YAML ({exc})") from None
    for lineno, obj in items:
        yield f"{path}:{lineno}", lineno, obj


# A seed field longer than this fills most of a prompt (the CPU engine's context is 4,096 tokens, ~4 characters
# each): it is accepted, with a warning, since a long abstract as an input is legitimate.
LONG_FIELD = 8000
_WARNED: set[str] = set()


def long_fields(seed: dict, where: str) -> list[str]:
    return [
        f"{where}: seed {seed['id']!r}: field {field!r} is {len(seed[field]):,} characters (over {LONG_FIELD:,}): "
        "prompts that show it as a demonstration will be cut to fit the model's context"
        for field in ("instruction", "input", "output")
        if len(seed[field]) > LONG_FIELD
    ]


def load_seeds(path: str | Path, warnings: list[str] | None = None) -> list[dict]:
    """Read a seeds file (.jsonl, or .yaml/.yml holding a list); any problem raises SelfSpecError naming
    file:line and the field. Oversized fields are warnings: appended to `warnings`, or printed when it is None."""
    path = check_file(Path(path), "seeds")
    found: list[str] = []
    seeds: list[dict] = []
    seen: dict[str, int] = {}
    objects = _yaml_objects(path) if path.suffix in (".yaml", ".yml") else _jsonl_objects(path)
    for where, lineno, obj in objects:
        seed = parse_seed(obj, where, lineno)
        if seed["id"] in seen:
            raise SelfSpecError(f"{where}: duplicate id {seed['id']!r} (first on line {seen[seed['id']]})")
        seen[seed["id"]] = lineno
        seeds.append(seed)
        found += long_fields(seed, where)
    if not seeds:
        raise SelfSpecError(f"{path}: no seed tasks in file")
    if warnings is None:
        for line in found:
            if line not in _WARNED:  # once per process: a run reads its seeds more than once
                _WARNED.add(line)
                print(f"selfspec: warning: {line}", file=sys.stderr)
    else:
        warnings += found
    return seeds


def check_seeds(path: str | Path, threshold: float = 0.7) -> tuple[list[str], list[str], dict[str, int]]:
    """Lint a seeds file: returns (errors, warnings, task-type counts). Schema problems are errors;
    repeated tasks too; near-duplicate instructions (ROUGE-L F > threshold) and a dominant task type are warnings."""
    from collections import Counter

    from .filters import NoveltyPool

    errors: list[str] = []
    warnings: list[str] = []
    try:
        seeds = load_seeds(path, warnings)
    except SelfSpecError as exc:
        return [str(exc)], [], {}
    pool = NoveltyPool(threshold)
    seen: dict[tuple, str] = {}
    for seed in seeds:
        key = (seed["instruction"], seed["input"])
        if key in seen:
            errors.append(f"{path}: seed {seed['id']!r} repeats the instruction and input of {seen[key]!r}")
        seen.setdefault(key, seed["id"])
        hit = pool.most_similar(seed["instruction"])
        if hit is not None:
            warnings.append(
                f"{path}: seed {seed['id']!r}: instruction has ROUGE-L {hit[0]:.2f} > {threshold} "
                f"with seed {seeds[hit[1]]['id']!r}"
            )
        pool.add(seed["instruction"])
    types = Counter(s["task_type"] or "(none)" for s in seeds)
    for name, count in sorted(types.items()):
        if len(types) > 1 and count > 0.4 * len(seeds):
            warnings.append(
                f"{path}: task type {name!r} holds {count} of {len(seeds)} seeds: the generated tasks "
                "will lean towards it"
            )
    return errors, warnings, dict(sorted(types.items()))
