"""B10: what a QLoRA optimizer step of Gemma-3-270M costs through `axolotl train` on this CPU, and what cuts it.

Gemma-3-270M has a 262,144-token vocabulary: its LM head (640 x 262,144) and the float32 logits it makes for every
position are about as costly as the rest of the model. Every variant trains the same data (the 80 biomedical
seeds as Alpaca jsonl) from the same base model for `--steps` optimizer steps, one after another in one run:

- plain: QLoRA (NF4), micro-batch 4 x gradient accumulation 2, sequence_len 1024 (the experiment's setting);
- packing: the same with `sample_packing: true` (several examples per row: fewer, fuller rows);
- packing_mb1: packing one 1,024-token row at a time (micro-batch 1 x gradient accumulation 8);
- seq512: sequence_len 512 (Axolotl pads a batch to its longest example, so this only drops the longest);
- chunked_ce: `chunked_cross_entropy: true` (Axolotl's torchtune-style loss: the logits are still made whole, the
  float32 upcast and the loss go a chunk at a time; compiled with torch.compile);
- liger_flce: the Liger plugin's fused linear cross-entropy (the logits never made whole; Triton kernels);
- lora_fp32: plain LoRA on float32 weights (no NF4 dequantisation in every matmul);
- plugin_all_logits / plugin_loss_logits: QLoRA through the selfspec plugin (`seeds_only`: the same 80 seeds), the
  output layer on every position, then only where the loss reads (`selfspec.loss_logits_only`).

Seconds per step = the time between the first and the last logged loss (`logging_steps: 1`) divided by the steps
between them, so model loading, tokenisation and the first step's warm-up are left out; the wall time to exit is
recorded too. A step's tokens (Axolotl's `tokens/total`, padding included, and `tokens/trainable`) vary with the
batch, and packing puts more examples in a step: tokens per second over the same steps is the comparable rate. A variant that fails records its error. The machine's load average is recorded before each variant:
on a shared 2-core machine the ratios measured side by side in one run are the result, not the absolute numbers.

    .venv/bin/python benchmarks/b10_gemma_train.py [--variants plain,seq512] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import yaml
from b5_train_overhead import TRAINING
from benchlib import ROOT, header, start_axolotl, write_result

LOSS = re.compile(r"""['"]loss['"]\s*:""")
ERROR = re.compile(r"^[\w.]*(Error|Exception)\b")
TOKENS = re.compile(r"""['"](tokens/(?:total|trainable))['"]\s*:\s*['"]?(\d+)""")  # per logged step
BASE = {  # B5's CPU QLoRA settings with the experiment's (recipes/gemma-biomed.yml): logged every step, no checkpoints
    **TRAINING,
    "lora_dropout": 0.05,
    "learning_rate": 0.0003,
    "lr_scheduler": "cosine",
    "warmup_steps": 1,
    "micro_batch_size": 4,
    "gradient_accumulation_steps": 2,
    "sequence_len": 1024,
}
PLUGIN = {"plugins": ["selfspec_plugin.SelfSpecPlugin"]}
SEEDS_ONLY = {"seeds": str(ROOT / "seeds" / "biomed.jsonl"), "seeds_only": True}
VARIANTS = {
    "plain": {},
    "packing": {"sample_packing": True, "pad_to_sequence_len": True},
    # the same tokens a step can hold in one 1,024-token row at a time (4 rows at once: 4.3 GB of float32 logits)
    "packing_mb1": {
        "sample_packing": True,
        "pad_to_sequence_len": True,
        "micro_batch_size": 1,
        "gradient_accumulation_steps": 8,
    },
    "seq512": {"sequence_len": 512},
    "chunked_ce": {"chunked_cross_entropy": True},
    "liger_flce": {"plugins": ["axolotl.integrations.liger.LigerPlugin"], "liger_fused_linear_cross_entropy": True},
    "lora_fp32": {"adapter": "lora", "load_in_4bit": False},
    # through the plugin (the experiment's path: `selfspec.seeds_only`, the same 80 seeds as its data), with the
    # output layer on every position, then only on the positions the loss reads (selfspec.loss_logits_only)
    "plugin_all_logits": {**PLUGIN, "selfspec": {**SEEDS_ONLY, "loss_logits_only": False}},
    "plugin_loss_logits": {**PLUGIN, "selfspec": {**SEEDS_ONLY, "loss_logits_only": True}},
}


def seeds_as_alpaca(path: Path) -> Path:
    """The biomedical seeds as an Alpaca jsonl: the same short, real domain examples for every variant."""
    out = path / "seeds-alpaca.jsonl"
    rows = [json.loads(line) for line in (ROOT / "seeds" / "biomed.jsonl").read_text().splitlines() if line.strip()]
    out.write_text(
        "".join(
            json.dumps({"instruction": r["instruction"], "input": r.get("input", ""), "output": r["output"]}) + "\n"
            for r in rows
        )
    )
    return out


def recipe(work: Path, name: str, variant: str, model: str, data: Path, steps: int) -> Path:
    cfg = {
        "base_model": model,
        **BASE,
        **VARIANTS[variant],
        "max_steps": steps,
        "datasets": [{"path": str(data), "ds_type": "json", "type": "alpaca"}],
        "output_dir": str(work / name / "out"),
        "dataset_prepared_path": str(work / name / "prepared"),
    }
    path = work / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def train(path: Path, work: Path, timeout: float) -> dict:
    """`axolotl train`: the arrival time of each logged loss, the wall time, or the error's last lines."""
    shutil.rmtree(work / path.stem, ignore_errors=True)
    start, losses, tokens, tail, errors = time.perf_counter(), [], [], [], []
    log = open(work / f"{path.stem}.log", "w")
    # its own process group: accelerate's training child is stopped with it
    proc = start_axolotl(path, work, start_new_session=True)
    # a step can take minutes without printing a line: a timer, not a check per line
    watchdog = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
    watchdog.start()
    for line in proc.stdout:
        log.write(line)
        log.flush()
        if LOSS.search(line):
            losses.append(round(time.perf_counter() - start, 2))
            tokens.append({k: int(v) for k, v in TOKENS.findall(line)})
        tail = (tail + [line.rstrip()])[-15:]
        if ERROR.match(line):  # the cause, which the launcher's own traceback pushes out of the tail
            errors.append(line.rstrip())
    code = proc.wait()
    watchdog.cancel()
    row = {"loss_times_s": losses, "tokens": tokens, "wall_s": round(time.perf_counter() - start, 1), "exit": code}
    if code == -signal.SIGKILL:
        tail.append(f"killed after {timeout:.0f} s")
    row.update(rates(row))
    if code or len(losses) < 2:
        row["error"] = errors[-3:] + [line for line in tail if line.strip()][-3:]
    return row


def rates(row: dict) -> dict:
    """Seconds per step and tokens per second between the first and the last logged loss. Axolotl's `tokens/total`
    counts from the start of training (padding included): the steps' tokens are the difference."""
    times, tokens = row["loss_times_s"], row["tokens"]
    if len(times) < 2:
        return {}
    seconds = times[-1] - times[0]
    counted = tokens[-1].get("tokens/total", 0) - tokens[0].get("tokens/total", 0)
    return {"s_per_step": round(seconds / (len(times) - 1), 2), "tokens_per_s": round(counted / seconds, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "gemma-3-270m"))
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600, help="seconds after which a variant is stopped")
    ap.add_argument("--work", default="outputs/b10")
    ap.add_argument("--out", default="benchmarks/results/b10_gemma_train.json")
    ap.add_argument("--append", action="store_true", help="keep the other variants' rows already in --out")
    args = ap.parse_args()
    if not (Path(args.model) / "config.json").is_file():
        sys.exit(f"{args.model}: no model (selfspec fetch-demo-model gemma-3-270m)")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = seeds_as_alpaca(work)
    runs = json.loads(Path(args.out).read_text())["runs"] if args.append and Path(args.out).is_file() else {}
    for variant in [v for v in args.variants.split(",") if v]:  # none: the rows in --out recomputed
        name = next(n for n in [variant] + [f"{variant}#{i}" for i in range(2, 99)] if n not in runs)  # a repeat
        load = os.getloadavg()[0]
        runs[name] = {
            "variant": variant,
            "load_average_1min": round(load, 2),
            **train(recipe(work, name, variant, args.model, data, args.steps), work, args.timeout),
        }
        print(f"{name}: {runs[name].get('s_per_step', 'failed')} s/step (load {load:.1f})", file=sys.stderr)
        write_result(args.out, {**header("B10 Gemma-3-270M training cost", "", ()), "runs": runs})  # as it goes
    for row in runs.values():
        row.update(rates(row))
    plain = runs.get("plain", {}).get("tokens_per_s")
    for row in runs.values():
        if plain and row.get("tokens_per_s"):
            row["tokens_per_s_vs_plain"] = round(row["tokens_per_s"] / plain, 2)
    result = {
        **header(
            "B10 Gemma-3-270M training cost",
            "seconds per QLoRA optimizer step on CPU, and what cuts it",
            ("axolotl", "torch", "transformers", "peft", "bitsandbytes", "liger-kernel"),
        ),
        "model": args.model,
        "data": {"file": "seeds/biomed.jsonl as alpaca", "examples": sum(1 for _ in open(data))},
        "steps": args.steps,
        "training": BASE,
        "variants": VARIANTS,
        "runs": runs,
    }
    write_result(args.out, result)
    print("| variant | s/step | tokens/s | vs plain | wall (s) | load |\n|---|---|---|---|---|---|")
    for name, row in runs.items():
        print(
            f"| {name} | {row.get('s_per_step', 'failed')} | {row.get('tokens_per_s', '')} | "
            f"{row.get('tokens_per_s_vs_plain', '')} | {row['wall_s']} | {row['load_average_1min']} |"
        )
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
