"""GPU check for the parts of selfspec a lent CUDA machine can run (see docs/gpu.md).

The lent machines have torch, transformers, peft and accelerate but no vLLM, Axolotl or TRL, and no
network; `benchmarks/gpu_check.sh` carries bitsandbytes, pluggy and pydantic wheels there. So this runs:

1. hand-off: a real selfspec generation run (transformers backend, the tests' tiny model) in the child
   process the Axolotl plugin uses, with free device memory sampled before, during and after;
2. iterate on CUDA: a LoRA adapter trained on step 1's triplets, then round 2's responses from base + adapter
   (PEFT) in the same child process, with free memory sampled as in step 1;
3. QLoRA on CUDA: 4-bit NF4 (bitsandbytes) + PEFT LoRA training steps on random-weight models of the
   SmolLM2-135M and Llama-3.2-1B shapes (the weights cannot be carried there; step time and memory
   depend on the shape, not the values), on the triplets of step 1 tokenised with SmolLM2's tokenizer;
4. generation throughput (issue 7, B6) of the transformers backend with a random ~1B model: batched
   greedy responses and seeded sampling (how it brainstorms), extrapolated to 5K triplets. Random weights rarely emit EOS, so every request runs to max_tokens: an upper bound.

Every part writes its own record to OUT/gpu_check.json; a failing part is recorded, not fatal.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPE_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
SHAPES = {  # random-weight stand-ins: same shape as the real models (both: head_dim 64, tied embeddings)
    name: dict(zip(SHAPE_FIELDS, sizes), head_dim=64, tie_word_embeddings=True)
    for name, sizes in {"smollm2-135m": (576, 1536, 30, 9, 3), "llama-3.2-1b": (2048, 8192, 16, 32, 8)}.items()
}
GiB = 1024**3


def free_gib() -> float:
    return round(torch.cuda.mem_get_info()[0] / GiB, 3) if torch.cuda.is_available() else 0.0


class MinFree(threading.Thread):
    """Samples free device memory every 0.2 s; `low` is the least seen (the child's footprint)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.low, self.stop = free_gib(), threading.Event()

    def run(self):
        while not self.stop.wait(0.2):
            self.low = min(self.low, free_gib())


def watched_child(job) -> dict:
    """Run `job` in the plugin's generation child, sampling free device memory before, during and after."""
    from selfspec_plugin.fileio import read_json
    from selfspec_plugin.runner import generate_in_child

    before = free_gib()
    watch = MinFree()
    watch.start()
    start = time.perf_counter()
    run_dir = generate_in_child(job)
    seconds = time.perf_counter() - start
    watch.stop.set()
    watch.join()
    time.sleep(1)
    manifest = read_json(run_dir / "manifest.json")
    return {
        "run_dir": str(run_dir),
        "seconds": round(seconds, 1),
        "free_gib_before": before,
        "free_gib_lowest_during": watch.low,
        "free_gib_after": free_gib(),
        "counts": manifest["counts"],
        "stages": manifest["stages"],
        "tokens_per_second": manifest["tokens_per_second"],
    }


def handoff_block(smoke: bool) -> dict:
    return {
        "seeds": str(ROOT / "tests/data/seeds.jsonl"),
        "domain": "biomedicine",
        "backend": "transformers",
        "num_instructions": 8 if smoke else 64,
        "prompts_per_round": 8 if smoke else 64,
        "max_rounds": 6,
        "instruction_max_tokens": 160,
        "response_demos": 3,
        "response_max_tokens": 96,
        "chunk_size": 16,
        "backend_options": {"batch_size": 64},
    }


def handoff(tiny: Path, out: Path, smoke: bool) -> dict:
    from selfspec_plugin.runner import make_job

    return watched_child(make_job(handoff_block(smoke), str(tiny), str(out / "handoff")))


def train_lora(model_dir: Path, texts: list[str], out: Path, steps: int) -> dict:
    """A plain (bf16 on CUDA) PEFT LoRA on `model_dir`, trained hard enough that its greedy outputs move."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model = get_peft_model(
        model.to(device), LoraConfig(r=8, lora_alpha=16, task_type="CAUSAL_LM", target_modules="all-linear")
    )
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    enc = tokenizer(texts[:64], truncation=True, max_length=256, padding=True, return_tensors="pt").to(device)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    losses = []
    for _ in range(steps):
        loss = model(**enc, labels=labels).loss
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        losses.append(round(loss.item(), 4))
    model.save_pretrained(out)
    del model, optim
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"steps": steps, "loss_first": losses[0], "loss_last": losses[-1]}


def iterate_round2(tiny: Path, out: Path, round1: dict, smoke: bool) -> dict:
    """Issue 6 on CUDA: round 2's responses from base + round 1's LoRA adapter (PEFT in the transformers backend),
    in the plugin's child process, through the same previous_round config `selfspec iterate` writes."""
    from selfspec_plugin.iterate import changed_responses
    from selfspec_plugin.runner import make_job

    run1 = Path(round1["run_dir"])
    rows = [json.loads(line) for line in open(run1 / "data.jsonl")]
    adapter = out / "round-1-adapter"
    training = train_lora(tiny, [f"{r['instruction']}\n{r['input']}\n{r['output']}" for r in rows], adapter, 5)
    block = {**handoff_block(smoke), "previous_round": {"run_dir": str(run1), "adapter": str(adapter)}}
    record = watched_child(make_job(block, str(tiny), str(out / "round-2")))
    changed, compared = changed_responses(run1, Path(record["run_dir"]))
    manifest = json.loads((Path(record["run_dir"]) / "manifest.json").read_text())
    return {
        "round_1_training": training,
        **record,
        "changed_responses": changed,
        "compared": compared,
        "manifest_previous_round": manifest.get("previous_round"),
    }


def random_model(shape: str, tokenizer, path: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_position_embeddings=4096,
        **SHAPES[shape],
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def qlora(shape: str, tokenizer, texts: list[str], work: Path, steps: int) -> dict:
    import bitsandbytes
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    path = random_model(shape, tokenizer, work / shape)
    free_start = free_gib()
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=quant, device_map={"": 0})
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(
        model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM", target_modules="all-linear")
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    batch, seq = 8, 512
    enc = tokenizer(texts, truncation=True, max_length=seq, padding="max_length", return_tensors="pt")
    torch.cuda.reset_peak_memory_stats()
    losses, times = [], []
    model.train()
    for step in range(steps):
        idx = [(step * batch + j) % len(texts) for j in range(batch)]
        ids, mask = enc["input_ids"][idx].cuda(), enc["attention_mask"][idx].cuda()
        labels = ids.masked_fill(mask == 0, -100)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses.append(round(loss.item(), 4))
    peak = torch.cuda.max_memory_allocated() / GiB
    out = work / f"{shape}-adapter"
    model.save_pretrained(out)
    del model, optim
    torch.cuda.empty_cache()
    steady = sorted(times[2:]) or times
    return {
        "bitsandbytes": bitsandbytes.__version__,
        "trainable_params": trainable,
        "batch": batch,
        "seq_len": seq,
        "steps": steps,
        "median_step_s": round(steady[len(steady) // 2], 4),
        "tokens_per_s": round(batch * seq / steady[len(steady) // 2]),
        "peak_allocated_gib": round(peak, 3),
        "free_gib_start": free_start,
        "free_gib_end": free_gib(),
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "adapter_files": sorted(p.name for p in out.iterdir()),
    }


def throughput(tokenizer, work: Path, smoke: bool) -> dict:
    from selfspec_plugin.backends import Sampling
    from selfspec_plugin.backends.transformers import TransformersBackend
    from selfspec_plugin.prompts import brainstorm_prompt, response_prompt
    from selfspec_plugin.seeds import load_seeds

    seeds = load_seeds(ROOT / "seeds/biomed.jsonl")
    shape = "smollm2-135m" if smoke else "llama-3.2-1b"
    path = work / shape
    if not path.is_dir():
        random_model(shape, tokenizer, path)
    n_resp, n_brain, max_tokens = (8, 4, 16) if smoke else (256, 128, 256)
    backend = TransformersBackend(str(path), {"batch_size": 64})
    responses = [
        response_prompt(f"q{i}", seeds[i % len(seeds)], seeds[i % 7 : i % 7 + 5], "biomedicine") for i in range(n_resp)
    ]
    brainstorms = [brainstorm_prompt(f"b{i}", seeds[i : i + 3], "biomedicine") for i in range(n_brain)]
    record = {"shape": shape, "max_tokens": max_tokens}
    for name, prompts, sampling in (
        ("responses_greedy_batched", responses, Sampling(0.0, 1.0, max_tokens, 42)),
        ("brainstorm_sampled_batched", brainstorms, Sampling(1.0, 0.98, max_tokens, 42)),
    ):
        backend.generate(prompts[:2], sampling, "completion")  # warm-up
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        done = backend.generate(prompts, sampling, "completion")
        seconds = time.perf_counter() - t0
        tokens = sum(c.tokens for c in done)
        record[name] = {
            "prompts": len(prompts),
            "tokens": tokens,
            "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1),
        }
    backend.close()
    # 5K triplets at the paper's settings: 5K responses; ~1 kept instruction per brainstorm prompt (our SmolLM2 runs).
    resp_s = 5000 * max_tokens / record["responses_greedy_batched"]["tokens_per_s"]
    brain_s = 5000 * max_tokens / record["brainstorm_sampled_batched"]["tokens_per_s"]
    record["estimate_5k_minutes"] = {"responses": round(resp_s / 60, 1), "brainstorm": round(brain_s / 60, 1)}
    return record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", type=Path, required=True, help="the tests' tiny model directory")
    parser.add_argument("--tokenizer", type=Path, required=True, help="SmolLM2 tokenizer directory")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script itself on CPU")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import transformers
    from transformers import AutoTokenizer

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "free_gib_at_start": free_gib(),
    }
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    work = Path(tempfile.mkdtemp(prefix="selfspec-gpu-"))  # random weights: not sent back
    parts = [
        ("handoff", lambda: handoff(args.tiny, args.out, args.smoke)),
        ("iterate_round2", lambda: iterate_round2(args.tiny, args.out, result["handoff"], args.smoke)),
    ]
    if torch.cuda.is_available():

        def texts():
            run = Path(result["handoff"].get("run_dir", ""))
            data = run / "data.jsonl" if run.name else ROOT / "seeds/biomed.jsonl"
            rows = [json.loads(line) for line in open(data)]
            return [f"{r['instruction']}\n{r['input']}\n{r['output']}" for r in rows] * 20

        parts += [(f"qlora_{s}", lambda s=s: qlora(s, tokenizer, texts(), work, args.steps)) for s in SHAPES]
    parts.append(("throughput_1b", lambda: throughput(tokenizer, work, args.smoke)))
    for name, part in parts:
        t0 = time.perf_counter()
        try:
            result[name] = part()
        except Exception as exc:  # record and go on: one run of this script must tell as much as it can
            result[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        result[name]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(name, json.dumps(result[name])[:600], flush=True)
        (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
