"""`selfspec eval`: the base model and its adapter on the same held-out items, with the same prompts.

Prompts are BoX-style (task definition, k demonstrations, the input) inside the Alpaca template that
selfspec's training data uses (or the model's chat template). Both models are scored with token F1 and
ROUGE-L (metrics.py) plus each task's standard metric; k > 0 is repeated over several demonstration
samplings (mean ± std); the adapter-minus-base difference gets a paired bootstrap 95% interval.
One engine serves both models where the backend can apply a LoRA adapter per request (vLLM's
`enable_lora`, the transformers backend through PEFT); any other backend gets merged weights.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

from . import metrics, plugins, store
from .backends.base import VLLM_ENGINES, Sampling, adapter_rank, lora_options
from .errors import SelfSpecError
from .prompts import Prompt
from .tasks import load_tasks

ALPACA_SYSTEM = ("Below is an instruction that describes a task, paired with an input that provides further "
                 "context. Write a response that appropriately completes the request.")
STOP = ("\n\n", "###")


def subsample(task: dict, limit: int | None) -> list[dict]:
    """The first `limit` instances in a fixed hash order: the same items on every machine and run."""
    items = task["instances"]
    if not limit or limit >= len(items):
        return items
    order = sorted(range(len(items)), key=lambda i: hashlib.sha256(f"{task['task']}:{i}".encode()).digest())
    return [items[i] for i in sorted(order[:limit])]


def sample_demos(task: dict, k: int, sampling: int, seed: int) -> list[dict]:
    if k == 0:
        return []
    if len(task["demos"]) < k:
        raise SelfSpecError(f"task {task['task']!r} has {len(task['demos'])} demonstrations, --shots asks for {k}")
    return random.Random(f"{seed}:{task['task']}:{k}:{sampling}").sample(task["demos"], k)


def build_prompt(prompt_id: str, task: dict, demos: list[dict], instance: dict, fmt: str) -> Prompt:
    instruction = task["definition"]
    if demos:
        instruction += "\n\nExamples:\n\n" + "\n\n".join(f"Input: {d['input']}\nOutput: {d['output']}" for d in demos)
    text = f"{ALPACA_SYSTEM}\n\n### Instruction:\n{instruction}\n\n### Input:\n{instance['input']}\n\n### Response:\n"
    messages = ({"role": "user", "content": f"{instruction}\n\nInput: {instance['input']}"},)
    return Prompt(id=prompt_id, text=text, messages=messages, stop=STOP if fmt == "alpaca" else ())


def plan(tasks: list[dict], shots: list[int], samplings: int, limit: int | None, seed: int, fmt: str) -> list[dict]:
    """Every request of an evaluation: (task, k, sampling, item) with its prompt. Pure."""
    requests = []
    for task in tasks:
        items = subsample(task, limit)
        for k in shots:
            for s in range(samplings if k else 1):
                demos = sample_demos(task, k, s, seed)
                for i, item in enumerate(items):
                    pid = f"{task['task']}-k{k}-s{s}-{i}"
                    requests.append({"task": task["task"], "k": k, "sampling": s, "item": i, "gold": item["output"],
                                     "max_tokens": task["max_tokens"], "prompt": build_prompt(pid, task, demos, item, fmt)})
    return requests


def clean(text: str) -> str:
    return text.split("\n\n")[0].strip()


def task_scores(task: dict, preds: list[str], golds: list[str]) -> dict:
    """One (task, k, sampling) cell: per-item F1/ROUGE-L lists and the task's standard metric."""
    out = {"f1_items": [metrics.token_f1(p, g) for p, g in zip(preds, golds)],
           "rougeL_items": [metrics.rouge_l(p, g) for p, g in zip(preds, golds)],
           "exact_match": statistics.fmean(metrics.exact_match(p, g) for p, g in zip(preds, golds))}
    if task["kind"] == "labels":
        labels = [metrics.parse_label(p, task["labels"]) for p in preds]
        out.update(accuracy=metrics.accuracy(labels, golds), macro_f1=metrics.macro_f1(labels, golds, task["labels"]),
                   unparseable=sum(label is None for label in labels))
    elif task["kind"] == "entities":
        out["entity_f1"] = metrics.entity_prf(preds, golds)["f1"]
    return out


STANDARD = ("exact_match", "accuracy", "macro_f1", "unparseable", "entity_f1")


def summarize(tasks: list[dict], requests: list[dict], preds: dict[str, list[str]]) -> dict:
    """Rows (model × task × k), per-model averages and adapter-vs-base deltas from the raw predictions."""
    by_name = {t["task"]: t for t in tasks}
    cells: dict[tuple, list[int]] = {}
    for idx, r in enumerate(requests):
        cells.setdefault((r["task"], r["k"], r["sampling"]), []).append(idx)
    rows, items = [], {}
    for model, texts in preds.items():
        groups: dict[tuple, list[dict]] = {}
        for (task, k, s), idxs in cells.items():
            scored = task_scores(by_name[task], [texts[i] for i in idxs], [requests[i]["gold"] for i in idxs])
            groups.setdefault((task, k), []).append(scored)
        for (task, k), runs in groups.items():
            row = {"model": model, "task": task, "k": k, "n": len(runs[0]["f1_items"]), "samplings": len(runs)}
            for metric in ("f1", "rougeL"):
                means = [statistics.fmean(run[f"{metric}_items"]) for run in runs]
                row[metric], row[f"{metric}_std"] = statistics.fmean(means), statistics.pstdev(means)
            row.update({m: statistics.fmean(run[m] for run in runs) for m in STANDARD if m in runs[0]})
            rows.append(row)
            items[(model, task, k)] = [statistics.fmean(v) for v in zip(*(run["f1_items"] for run in runs))]
    averages = []
    for model in preds:
        for k in sorted({r["k"] for r in rows}):
            mine = [r for r in rows if r["model"] == model and r["k"] == k]
            averages.append({"model": model, "k": k, "f1": statistics.fmean(r["f1"] for r in mine),
                             "rougeL": statistics.fmean(r["rougeL"] for r in mine)})
    deltas = []
    if "adapter" in preds:
        for task, k in sorted({(r["task"], r["k"]) for r in rows}, key=lambda tk: (tk[1], tk[0])):
            deltas.append({"task": task, "k": k, "metric": "f1",
                           **metrics.paired_bootstrap(items[("base", task, k)], items[("adapter", task, k)])})
    return {"rows": rows, "averages": averages, "deltas": deltas}


def _generate(backend, requests: list[dict], adapter: str | None, mode: str, progress: bool, label: str) -> list[str]:
    """Greedy completions in request order; one engine call per task (its own max_tokens)."""
    from itertools import groupby

    from tqdm import tqdm

    texts: list[str] = []
    kwargs = {"adapter": adapter} if adapter else {}
    with tqdm(total=len(requests), desc=f"selfspec eval: {label}", unit="prompt", disable=not progress) as bar:
        for _, group in groupby(requests, key=lambda r: r["task"]):
            group = list(group)
            sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=group[0]["max_tokens"], seed=0)
            texts += [clean(c.text) for c in backend.generate([r["prompt"] for r in group], sampling, mode, **kwargs)]
            bar.update(len(group))
    return texts


def merge_adapter(model: str, adapter: str, out: Path) -> Path:
    """Fallback for backends that cannot apply an adapter per request: base + adapter merged, saved."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32), adapter)
    merged.merge_and_unload().save_pretrained(out)
    AutoTokenizer.from_pretrained(model).save_pretrained(out)
    return out


def evaluate_recipe(raw: dict, adapter: str | None = None, tasks: list[str] | None = None, out: str | None = None,
                    progress: bool = True, **overrides) -> tuple[dict, Path]:
    """`selfspec eval CONFIG`: the config's model, backend and `selfspec.eval` settings, flags overriding them.
    The adapter defaults to the config's output_dir when a trained adapter is there."""
    from pydantic import ValidationError

    from .config import EvalOptions, SelfSpecConfig

    cfg = SelfSpecConfig(**raw["selfspec"])
    try:
        options = EvalOptions(**{**cfg.eval.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as exc:
        raise SelfSpecError("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from None
    model = cfg.model or raw.get("base_model")
    if not model:
        raise SelfSpecError("selfspec.model: no model to evaluate (set selfspec.model or base_model)")
    output_dir = Path(raw.get("output_dir") or ".")
    if adapter is None and (output_dir / "adapter_config.json").is_file():
        adapter = str(output_dir)
    if adapter is not None:
        try:
            adapter_rank(adapter)
        except SelfSpecError as exc:
            raise SelfSpecError(f"--adapter {exc}") from None
    specs = tasks or options.tasks
    if not specs:
        raise SelfSpecError("no evaluation tasks: pass --tasks or set selfspec.eval.tasks")
    loaded = [t for spec in specs for t in load_tasks(spec)]
    names = [t["task"] for t in loaded]
    if len(set(names)) != len(names):
        raise SelfSpecError(f"task names must be unique, got {', '.join(sorted(n for n in set(names) if names.count(n) > 1))} twice")
    out_dir = Path(out) if out else Path(adapter or output_dir) / "eval"
    result = evaluate(str(model), loaded, backend_name=cfg.backend, options=cfg.backend_settings(), adapter=adapter,
                      shots=options.shots, samplings=options.samplings, limit=options.limit,
                      fmt=options.prompt_format, out_dir=out_dir, seed=cfg.seed, progress=progress)
    return result, out_dir


def evaluate(model: str, tasks: list[dict], *, backend_name: str, options: dict, adapter: str | None,
             shots: list[int], samplings: int, limit: int | None, fmt: str, out_dir: Path,
             seed: int = 0, progress: bool = True) -> dict:
    """Score the base model (and the adapter, if given) and write eval.json/.md/.png + predictions."""
    requests = plan(tasks, shots, samplings, limit, seed, fmt)
    mode = "completion" if fmt == "alpaca" else "chat"
    started, preds = time.monotonic(), {}
    lora = adapter is not None and backend_name in (*VLLM_ENGINES, "transformers")
    if lora:
        options = lora_options(backend_name, options, adapter)
    backend = plugins.make_backend(backend_name, model, options)
    try:
        preds["base"] = _generate(backend, requests, None, mode, progress, "base")
        if lora:
            preds["adapter"] = _generate(backend, requests, adapter, mode, progress, "adapter")
    finally:
        backend.close()
    if adapter is not None and not lora:
        merged = merge_adapter(model, adapter, out_dir / "merged-model")
        backend = plugins.make_backend(backend_name, str(merged), options)
        try:
            preds["adapter"] = _generate(backend, requests, None, mode, progress, "adapter (merged)")
        finally:
            backend.close()
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model": model, "adapter": adapter,
        "backend": backend_name, "prompt_format": fmt, "shots": shots, "samplings": samplings, "limit": limit,
        "seed": seed, "wall_seconds": round(time.monotonic() - started, 1),
        "tasks": [{"task": t["task"], "kind": t["kind"], "source": t["source"], "scored": len(subsample(t, limit))}
                  for t in tasks],
        **summarize(tasks, requests, preds),
    }
    write_results(out_dir, result, requests, preds)
    return result


def write_results(out_dir: Path, result: dict, requests: list[dict], preds: dict[str, list[str]]) -> None:
    from .plots import eval_chart

    out_dir.mkdir(parents=True, exist_ok=True)
    store.write_jsonl(out_dir / "predictions.jsonl", (
        {"model": model, "task": r["task"], "k": r["k"], "sampling": r["sampling"], "item": r["item"],
         "gold": r["gold"], "prediction": texts[i]}
        for model, texts in preds.items() for i, r in enumerate(requests)))
    store.write_text(out_dir / "eval.md", markdown_table(result))
    eval_chart(result, out_dir / "eval.png")
    store.write_json(out_dir / "eval.json", result)  # last: its presence means the rest is there


def _pm(row: dict, metric: str) -> str:
    value = f"{100 * row[metric]:.1f}"
    return value + (f" ± {100 * row[metric + '_std']:.1f}" if row["samplings"] > 1 else "")


def _standard(row: dict) -> str:
    if "accuracy" in row:
        return f"acc {100 * row['accuracy']:.1f}, macro-F1 {100 * row['macro_f1']:.1f}, unparseable {row['unparseable']:.1f}"
    if "entity_f1" in row:
        return f"entity F1 {100 * row['entity_f1']:.1f}"
    return f"EM {100 * row['exact_match']:.1f}"


def markdown_table(result: dict) -> str:
    """Per task and k: base vs adapter F1 (± std over demo samplings), the paired difference with its 95%
    interval, ROUGE-L and the task's standard metric."""
    rows = {(r["model"], r["task"], r["k"]): r for r in result["rows"]}
    deltas = {(d["task"], d["k"]): d for d in result["deltas"]}
    has_adapter = bool(result["deltas"])
    head = ["task", "k", "n", "base F1"] + (["adapter F1", "Δ F1 [95% CI]"] if has_adapter else []) + \
           ["base ROUGE-L"] + (["adapter ROUGE-L"] if has_adapter else []) + ["base standard"] + \
           (["adapter standard"] if has_adapter else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = {t["task"]: i for i, t in enumerate(result["tasks"])}
    for (model, task, k), base in sorted(rows.items(), key=lambda kv: (kv[0][2], order[kv[0][1]])):
        if model != "base":
            continue
        cells = [task, str(k), str(base["n"]), _pm(base, "f1")]
        adapter = rows.get(("adapter", task, k))
        if adapter:
            d = deltas[(task, k)]
            mark = " *" if d["significant"] else ""
            cells += [_pm(adapter, "f1"), f"{100 * d['diff']:+.1f} [{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}]{mark}"]
        cells.append(_pm(base, "rougeL"))
        if adapter:
            cells.append(_pm(adapter, "rougeL"))
        cells.append(_standard(base))
        if adapter:
            cells.append(_standard(adapter))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for avg in result["averages"]:
        lines.append(f"- average over tasks, {avg['model']}, k={avg['k']}: F1 {100 * avg['f1']:.2f}, ROUGE-L {100 * avg['rougeL']:.2f}")
    lines += ["", "Scores in %. `*`: the paired bootstrap 95% interval of adapter − base excludes 0. "
              f"{result['samplings']} demonstration samplings for k > 0 (mean ± std). Model `{result['model']}`, "
              f"adapter `{result['adapter']}`, backend {result['backend']}, {result['prompt_format']} prompts, "
              f"limit {result['limit']}, {result['wall_seconds']} s."]
    return "\n".join(lines) + "\n"


def tracker_metrics(result: dict) -> dict[str, float]:
    """Flat numbers for W&B / trackio: `selfspec_eval/<task>/k<k>/<model>_f1`, averages and deltas."""
    flat = {f"selfspec_eval/{r['task']}/k{r['k']}/{r['model']}_{m}": r[m] for r in result["rows"] for m in ("f1", "rougeL")}
    flat |= {f"selfspec_eval/average/k{a['k']}/{a['model']}_f1": a["f1"] for a in result["averages"]}
    flat |= {f"selfspec_eval/{d['task']}/k{d['k']}/delta_f1": d["diff"] for d in result["deltas"]}
    return flat
