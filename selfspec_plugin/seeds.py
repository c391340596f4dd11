"""Seed tasks: the handful of expert-written (instruction, input, output) triplets that start a run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import SelfSpecError
from .fileio import check_file, jsonl_objects, read_text
from .filters import NoveltyPool

REQUIRED = ("instruction", "output")
OPTIONAL = ("id", "task_type", "input")


TEXT = ("instruction", "input", "output", "task_type")
MAX_PROBLEMS = 50  # a file of another format (CSV saved as .jsonl) fails on every line: the first ones say why


class Item:
    """One seed as read from its file: the decoded object and where each part of it is, so that a problem names the
    line of the offending value (YAML) and, for a value read as a boolean or number, how to quote it."""

    def __init__(self, path: Path, lineno: int, obj: object, values: dict[str, tuple[int, str]] | None = None):
        self.path, self.lineno, self.obj = path, lineno, obj
        self.values = values or {}  # field -> (line of its value, the value as written); YAML only

    def at(self, field: str | None = None) -> str:
        return f"{self.path}:{self.values.get(field, (self.lineno, ''))[0]}"

    def quote_hint(self, field: str) -> str:
        value = self.obj[field]
        if not isinstance(value, (bool, int, float)):
            return ""
        if field in self.values:  # YAML reads yes/no/on/off/true/1.5 as booleans and numbers
            return f"; write it in quotes to keep it as text: {field}: {json.dumps(self.values[field][1])}"
        return f"; write it as a JSON string: {json.dumps(field)}: {json.dumps(json.dumps(value))}"


def seed_problems(item: Item) -> list[str]:
    """Every problem of one seed, each naming file:line and the field."""
    obj = item.obj
    if not isinstance(obj, dict):
        return [f"{item.at()}: a seed must be a JSON object, got {type(obj).__name__}"]
    allowed = ", ".join(OPTIONAL + REQUIRED)
    problems = [
        f"{item.at(field)}: unknown field {field!r} (allowed: {allowed})"
        for field in sorted(set(obj) - set(REQUIRED) - set(OPTIONAL), key=str)
    ]
    problems += [f"{item.at()}: missing field {field!r}" for field in REQUIRED if field not in obj]
    for field in TEXT:
        if field not in obj:
            continue
        if not isinstance(obj[field], str):
            problems.append(
                f"{item.at(field)}: field {field!r} must be a string, got {type(obj[field]).__name__}"
                + item.quote_hint(field)
            )
        elif field in REQUIRED and not obj[field].strip():
            problems.append(f"{item.at(field)}: field {field!r} is empty")
    seed_id = obj.get("id", "")
    if not isinstance(seed_id, (str, int)) or isinstance(seed_id, bool):
        problems.append(f"{item.at('id')}: field 'id' must be a string or an integer")
    return problems


def _record(obj: dict, index: int) -> dict:
    return {
        "id": str(obj.get("id", f"seed-{index}")),
        "task_type": obj.get("task_type", ""),
        "instruction": obj["instruction"].strip(),
        "input": obj.get("input", "").strip(),
        "output": obj["output"].strip(),
    }


def _jsonl_items(path: Path, problems: list[str]):
    for lineno, obj in jsonl_objects(path, problems):
        yield Item(path, lineno, obj)


def _yaml_items(path: Path, problems: list[str]):
    """A YAML list of seed mappings; each value is located on its own line. (`problems` is unused: a YAML syntax
    error stops the whole file, as its parser cannot go on past it.)"""
    import yaml

    text = read_text(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and not isinstance(root, yaml.SequenceNode):
            raise SelfSpecError(f"{path}:{root.start_mark.line + 1}: a YAML seeds file must be a list of tasks")
        items = []
        for node in root.value if root else []:
            values = {}
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode):
                        # an unknown or mistyped key is on the key's line; its value may start below it
                        line = value.start_mark.line if isinstance(value, yaml.ScalarNode) else key.start_mark.line
                        raw = value.value if isinstance(value, yaml.ScalarNode) else ""
                        values[key.value] = (line + 1, raw)
            obj = yaml.SafeLoader(yaml.serialize(node)).get_single_data()
            items.append(Item(path, node.start_mark.line + 1, obj, values))
    except (yaml.YAMLError, RecursionError) as exc:
        raise SelfSpecError(f"{path}: not valid YAML ({exc})") from None
    yield from items


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
    problems: list[str] = []
    seen: dict[str, int] = {}
    items = _yaml_items if path.suffix in (".yaml", ".yml") else _jsonl_items
    for item in items(path, problems):  # every problem of the file, not only the first: one run fixes them all
        mine = seed_problems(item)
        problems += mine
        if mine:
            continue
        seed = _record(item.obj, item.lineno)
        if seed["id"] in seen:
            problems.append(f"{item.at('id')}: duplicate id {seed['id']!r} (first on line {seen[seed['id']]})")
            continue
        seen[seed["id"]] = item.lineno
        seeds.append(seed)
        found += long_fields(seed, item.at())
    if problems:
        more = len(problems) - MAX_PROBLEMS
        raise SelfSpecError("\n".join(problems[:MAX_PROBLEMS] + ([f"... and {more} more"] if more > 0 else [])))
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

    errors: list[str] = []
    warnings: list[str] = []
    try:
        seeds = load_seeds(path, warnings)
    except SelfSpecError as exc:  # one error per problem
        return str(exc).splitlines(), [], {}
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
    warnings += few_seeds(path, len(seeds))
    types = Counter(s["task_type"] or "(none)" for s in seeds)
    for name, count in sorted(types.items()):
        if len(types) > 1 and count > 0.4 * len(seeds):
            warnings.append(
                f"{path}: task type {name!r} holds {count} of {len(seeds)} seeds: the generated tasks "
                "will lean towards it"
            )
    return errors, warnings, dict(sorted(types.items()))


FEW_SEEDS = 50  # Kang et al. used 80 seeds per domain; the README recommends 50-100


def few_seeds(path: str | Path, n: int) -> list[str]:
    """A warning when a seed file holds fewer tasks than the paper's range: it is not an error (a pilot may start
    small), but the brainstormed tasks vary less."""
    if n >= FEW_SEEDS:
        return []
    return [
        f"{path}: {n} seeds, below the paper's range of ~{FEW_SEEDS}-100 (the README recommends {FEW_SEEDS}-100): "
        "the brainstormed tasks will vary less and repeat the seeds more"
    ]


def token_cap_warnings(seeds: list[dict], count, cfg) -> list[str]:
    """Seeds longer than the run's token caps, in the model's own tokens (`count(text)`): a generated answer as long
    as the longest seed output reaches `response_max_tokens` and is rejected (`truncated_response`), a brainstormed
    item as long as the longest seed instruction + input reaches `instruction_max_tokens` and is cut."""
    checks = (
        ("response_max_tokens", lambda s: s["output"], "output", "truncated_response", 1),
        (
            "instruction_max_tokens",
            lambda s: f"{s['instruction']}\n{s['input']}",
            "instruction + input",
            "truncated",
            cfg.instruction_items,
        ),
    )
    warnings = []
    for key, text, what, reason, items in checks:
        cap = getattr(cfg, key)
        lengths = [(count(text(seed)), seed["id"]) for seed in seeds]
        longest, seed_id = max(lengths)
        over = sum(n > cap for n, _ in lengths)
        if over:
            warnings.append(
                f"selfspec.{key}: {cap}, but {over} of {len(seeds)} seeds' {what} are longer in this model's tokens "
                f"(the longest, seed {seed_id!r}: {longest}): generations as long as those seeds are cut and "
                f"rejected ({reason}); raise {key} to at least {longest * items}"
                + (f" ({items} items per generation)" if items > 1 else "")
            )
    return warnings
