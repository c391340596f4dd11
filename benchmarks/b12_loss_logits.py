"""B12: `selfspec.loss_logits_only` on a given training set, side by side in one process: the same QLoRA model
(Gemma-3-270M in NF4, LoRA r 8 on every linear layer, as recipes/gemma-biomed.yml trains it) runs forward and
backward on the same micro-batches (4 Alpaca examples, right-padded to the longest, loss on the answers), first
with the output layer on every position, then patched. B10 measures the same switch through `axolotl train` on
the seeds; this one measures it on any data, such as the experiment's generated triplets, whose answers are a
larger share of the tokens than the seeds' are.

    .venv/bin/python benchmarks/b12_loss_logits.py --data FILE.jsonl [--batches 6] [--out benchmarks/results/X.json]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from benchlib import ROOT, header, write_result

from selfspec_plugin.loss_logits import IGNORE_INDEX, keep_loss_logits_only
from selfspec_plugin.prompts import alpaca_prompt


def examples(path: Path, tokenizer, limit: int) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per triplet: the Alpaca prompt not trained on, the answer and the end token trained on."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = []
    for r in rows:
        prompt = tokenizer(alpaca_prompt(r["instruction"], r.get("input", ""))).input_ids
        answer = tokenizer(r["output"], add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        ids = (prompt + answer)[:limit]
        out.append((ids, ([IGNORE_INDEX] * len(prompt) + answer)[:limit]))
    return out


def batches(data: list, size: int, count: int, pad: int, seed: int = 0) -> list[dict]:
    import torch

    rng = random.Random(seed)
    out = []
    for _ in range(count):
        chosen = rng.sample(data, size)
        width = max(len(ids) for ids, _ in chosen)
        ids = [ids + [pad] * (width - len(ids)) for ids, _ in chosen]
        labels = [lab + [IGNORE_INDEX] * (width - len(lab)) for _, lab in chosen]
        mask = [[1] * len(i) + [0] * (width - len(i)) for i, _ in chosen]
        out.append(
            {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}
        )
    return out


def run(model, data: list[dict]) -> dict:
    import torch

    model.train()
    step = lambda b: model(**b, num_items_in_batch=torch.tensor(int((b["labels"][:, 1:] != IGNORE_INDEX).sum())))
    step(data[0]).loss.backward()  # warm-up
    model.zero_grad()
    losses, start = [], time.perf_counter()
    for b in data:
        out = step(b)
        out.loss.backward()
        losses.append(round(float(out.loss), 5))
        model.zero_grad()
    took = time.perf_counter() - start
    tokens = sum(int(b["input_ids"].numel()) for b in data)
    return {"s_per_batch": round(took / len(data), 2), "tokens_per_s": round(tokens / took, 1), "losses": losses}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT / "seeds" / "biomed.jsonl")
    ap.add_argument("--model", default=str(ROOT / "models" / "gemma-3-270m"))
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--out", default="benchmarks/results/b12_loss_logits.json")
    args = ap.parse_args()
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
    model = AutoModelForCausalLM.from_pretrained(args.model, quantization_config=quant, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear"))
    data = batches(examples(args.data, tokenizer, 1024), 4, args.batches, tokenizer.pad_token_id)
    tokens = sum(int(b["input_ids"].numel()) for b in data)
    trained = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in data)
    all_logits = run(model, data)
    assert keep_loss_logits_only(model)
    loss_logits = run(model, data)
    result = header("B12 loss_logits_only", "the same loss, fewer seconds per micro-batch", ("torch", "transformers"))
    result.update(
        data=str(args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data),
        batches=args.batches,
        tokens=tokens,
        trained_positions=trained,
        all_logits=all_logits,
        loss_logits=loss_logits,
        speedup=round(all_logits["s_per_batch"] / loss_logits["s_per_batch"], 2),
    )
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine",)}, indent=1))
    write_result(args.out, result)


if __name__ == "__main__":
    main()
