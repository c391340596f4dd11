"""B5: the plugin's overhead on training: `axolotl train` with the plugin on cached generated data vs plain
Axolotl on the same jsonl, time to the first training step.

Set-up (not timed): the tiny recipe's data is generated once with `selfspec generate` into a runs directory.
Then, alternating for `--repeats` rounds, two recipes that differ only in how the data arrives:

- plugin: `plugins: [selfspec_plugin.SelfSpecPlugin]` + the `selfspec:` block (the plugin validates the block,
  computes the run key, finds the finished run and hands its data.jsonl to Axolotl's loader);
- plain: no plugin, `datasets: [{path: <that data.jsonl>, ds_type: json, type: alpaca}]`.

Both run QLoRA on the same base model with `max_steps: 1` and a fresh output and prepared-dataset
directory each time (so both tokenise). Time to first step = from process start until Axolotl prints the
first step's loss (`logging_steps: 1`, stdout unbuffered); the total wall time is reported too.

Goal (issue 7): <= 5% difference. Command, from the repo root:

    .venv/bin/python benchmarks/b5_train_overhead.py --repeats 3
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from b1_overhead import model_path
from benchlib import ROOT, header, median, start_axolotl, write_result

LOSS = re.compile(r"""['"]loss['"]\s*:""")
TRAINING = {  # the e2e test's QLoRA settings for CPU
    "adapter": "qlora",
    "load_in_4bit": True,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_target_linear": True,
    "sequence_len": 512,
    "micro_batch_size": 2,
    "max_steps": 1,
    "num_epochs": 1,
    "learning_rate": 0.0002,
    "optimizer": "adamw_torch",
    "train_on_inputs": False,
    "val_set_size": 0,
    "bf16": False,
    "fp16": False,
    "tf32": False,
    "flash_attention": False,
    "sdp_attention": False,
    "lora_mlp_kernel": False,
    "lora_qkv_kernel": False,
    "lora_o_kernel": False,
    "lora_embedding_kernel": False,
    "dataset_num_proc": 1,
    "logging_steps": 1,
    "save_strategy": "no",
}
SELFSPEC = {
    "seeds": str(ROOT / "tests" / "data" / "seeds.jsonl"),
    "domain": "biomedicine",
    "num_instructions": 48,
    "prompts_per_round": 32,
    "instruction_max_tokens": 200,
    "response_max_tokens": 64,
    "vllm": {"max_model_len": 2048},
}


def recipe(work: Path, name: str, model: str, runs_dir: Path, data: Path | None) -> Path:
    cfg = {
        "base_model": model,
        **TRAINING,
        "output_dir": str(work / name / "out"),
        "dataset_prepared_path": str(work / name / "prepared"),
    }
    if data is None:
        cfg |= {"plugins": ["selfspec_plugin.SelfSpecPlugin"], "selfspec": {**SELFSPEC, "runs_dir": str(runs_dir)}}
    else:
        cfg["datasets"] = [{"path": str(data), "ds_type": "json", "type": "alpaca"}]
    path = work / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def train(path: Path, work: Path) -> dict:
    """Run `axolotl train`; seconds to the first logged loss and to exit."""
    for sub in ("out", "prepared"):
        shutil.rmtree(work / path.stem / sub, ignore_errors=True)
    start = time.perf_counter()
    first_step, tail = None, []
    proc = start_axolotl(path, work)
    for line in proc.stdout:
        if first_step is None and LOSS.search(line):
            first_step = time.perf_counter() - start
        tail = (tail + [line])[-40:]
    if proc.wait() or first_step is None:
        sys.exit(
            f"axolotl train {path} failed (exit {proc.returncode}, first step seen: {first_step}):\n{''.join(tail)}"
        )
    return {"first_step_s": first_step, "wall_s": time.perf_counter() - start}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny", choices=["tiny", "smollm2"])
    ap.add_argument("--repeats", type=int, default=3, help="medians over this many runs of each")
    ap.add_argument("--work", default="outputs/b5")
    ap.add_argument("--out", default="benchmarks/results/b5_train_overhead.json")
    args = ap.parse_args()
    model, work = model_path(args.model), Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    runs_dir = work / "selfspec"
    plugin = recipe(work, "plugin", model, runs_dir, None)
    data = (
        subprocess.run(
            [str(Path(sys.executable).parent / "selfspec"), "generate", str(plugin), "--no-progress"],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    plain = recipe(work, "plain", model, runs_dir, Path(data))
    runs = {"plugin": [], "plain": []}
    for rep in range(args.repeats):
        for name, path in (("plugin", plugin), ("plain", plain))[:: 1 if rep % 2 == 0 else -1]:
            runs[name].append(train(path, work))
            print(
                f"rep {rep + 1} {name}: first step {runs[name][-1]['first_step_s']:.1f}s, "
                f"exit {runs[name][-1]['wall_s']:.1f}s",
                file=sys.stderr,
            )
    row = {
        name: {"first_step_s": round(median(rs, "first_step_s"), 2), "wall_s": round(median(rs, "wall_s"), 2)}
        for name, rs in runs.items()
    }
    diff = row["plugin"]["first_step_s"] / row["plain"]["first_step_s"] - 1
    result = {
        **header(
            "B5 plugin overhead on training",
            "<= 5% difference in time to first step",
            ("axolotl", "torch", "transformers", "peft", "bitsandbytes"),
        ),
        "model": args.model,
        "data": data,
        "triplets": sum(1 for _ in open(data)),
        "repeats": args.repeats,
        "training": TRAINING,
        **row,
        "difference": round(diff, 4),
        "runs": runs,
    }
    write_result(args.out, result)
    print("| axolotl train, max_steps 1 | time to first step (s) | to exit (s) |\n|---|---|---|")
    for name in ("plain", "plugin"):
        print(f"| {name} | {row[name]['first_step_s']} | {row[name]['wall_s']} |")
    print(f"\nplugin vs plain, time to first step: {diff:+.1%}\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
