"""The transformers and OpenAI-compatible backends, for real: the tiny model in-process, and a real
vLLM OpenAI server (`python -m vllm.entrypoints.openai.api_server`) on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT
from tiny_model import random_lora

from selfspec_plugin import registry
from selfspec_plugin.backends import Sampling
from selfspec_plugin.errors import SelfSpecError
from selfspec_plugin.prompts import brainstorm_prompt
from selfspec_plugin.runner import generate, make_job
from selfspec_plugin.seeds import load_seeds

SEEDS = ROOT / "tests" / "data" / "seeds.jsonl"
SMALL = {
    "seeds": str(SEEDS),
    "domain": "biomedicine",
    "num_instructions": 6,
    "prompts_per_round": 6,
    "max_rounds": 4,
    "instruction_max_tokens": 160,
    "response_max_tokens": 48,
    "chunk_size": 4,
}


def test_openai_backend_retries_then_names_the_unreachable_server():
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = registry.make_backend(
        "openai", "m", {"base_url": f"http://127.0.0.1:{port}/v1", "max_retries": 2, "backoff": 0.01, "timeout": 2}
    )
    prompt = brainstorm_prompt("p", load_seeds(SEEDS)[:3], "biomedicine")
    start = time.time()
    with pytest.raises(
        SelfSpecError, match=rf"backend server unreachable: http://127.0.0.1:{port}/v1/completions failed 3 times"
    ):
        backend.generate([prompt], Sampling(1.0, 0.98, 8, 0), "completion")
    assert time.time() - start < 30


def test_openai_backend_needs_a_base_url():
    with pytest.raises(SelfSpecError, match="backend_options.base_url"):
        registry.make_backend("openai", "m", {})


def read_run(run_dir):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    data = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
    return manifest, data


@pytest.mark.slow
def test_transformers_backend_runs_the_pipeline_reproducibly(tiny_model, tmp_path):
    backend = registry.make_backend("transformers", str(tiny_model), {})
    prompts = [brainstorm_prompt(f"p{i}", load_seeds(SEEDS)[i : i + 3], "biomedicine") for i in range(3)]
    sampling = Sampling(1.0, 0.98, 64, 7)
    first = backend.generate(prompts, sampling, "completion")
    assert backend.generate(prompts[::-1], sampling, "completion")[::-1] == first  # per-item seeds
    assert all(c.tokens > 0 for c in first)
    # the stop strings' criterion (it embeds the whole vocabulary) was built for the first call and reused
    assert list(backend.stop_strings) == [tuple(sorted(prompts[0].stop))]
    run_dir = generate(make_job({**SMALL, "backend": "transformers"}, str(tiny_model), str(tmp_path)), progress=False)
    manifest, data = read_run(run_dir)
    assert manifest["backend"] == "transformers" and manifest["counts"]["triplets"] == len(data) > 0


@pytest.fixture(scope="module")
def served_adapter(tiny_model, tmp_path_factory):
    """A LoRA adapter of the tiny model with random (not zero) B matrices, in a folder named `round1`."""
    return random_lora(tiny_model, tmp_path_factory.mktemp("lora") / "round1", ["q_proj", "k_proj", "v_proj", "o_proj"])


@pytest.fixture(scope="module")
def vllm_server(tiny_model, served_adapter, tmp_path_factory):
    """vLLM's OpenAI server with the tiny model as `tiny` and, as vllm serve does it, its LoRA adapter as `round1`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1", "VLLM_LOGGING_LEVEL": "WARNING"}
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(tiny_model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--max-model-len",
            "2048",
            "--enforce-eager",
            "--no-enable-chunked-prefill",
            "--max-num-batched-tokens",
            "8192",
            "--served-model-name",
            "tiny",
            "--enable-lora",
            "--max-lora-rank",
            "8",
            "--lora-modules",
            f"round1={served_adapter}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            assert proc.poll() is None, open(log.name).read()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                time.sleep(2)
        else:
            pytest.fail("vLLM server did not become healthy in 600 s")
        yield f"{base}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.mark.slow
def test_openai_backend_against_a_real_vllm_server(vllm_server, tmp_path):
    options = {"base_url": vllm_server, "model": "tiny", "chat": False, "concurrency": 4}
    backend = registry.make_backend("openai", "tiny", options)
    prompts = [brainstorm_prompt(f"p{i}", load_seeds(SEEDS)[i : i + 3], "biomedicine") for i in range(4)]
    sampling = Sampling(1.0, 0.98, 48, 3)
    first = backend.generate(prompts, sampling, "completion")
    assert backend.generate(prompts, sampling, "completion") == first  # seeded requests repeat
    assert all(c.tokens > 0 for c in first)
    job = make_job({**SMALL, "backend": "openai", "backend_options": options}, "tiny", str(tmp_path))
    manifest, data = read_run(generate(job, progress=False))
    assert manifest["backend"] == "openai" and manifest["inputs"]["model"] == {"served": "tiny"}
    assert "base_url" not in manifest["inputs"]["settings"]["backend_options"]
    assert manifest["counts"]["triplets"] == len(data) > 0


@pytest.mark.slow
def test_openai_backend_serves_a_lora_adapter_under_its_model_name(vllm_server, served_adapter, tmp_path):
    backend = registry.make_backend("openai", "tiny", {"base_url": vllm_server, "model": "tiny", "chat": False})
    prompts = [brainstorm_prompt(f"p{i}", load_seeds(SEEDS)[i : i + 3], "biomedicine") for i in range(4)]
    greedy = Sampling(0.0, 1.0, 24, 0)
    base = [c.text for c in backend.generate(prompts, greedy, "completion")]
    adapted = [c.text for c in backend.generate(prompts, greedy, "completion", adapter=str(served_adapter))]
    assert adapted != base and base == [c.text for c in backend.generate(prompts, greedy, "completion")]
    with pytest.raises(
        SelfSpecError,
        match=r"does not serve the LoRA adapter .* as 'elsewhere' \(it serves: round1, tiny\)"
        r"\. Start it with `vllm serve MODEL --enable-lora --lora-modules elsewhere=",
    ):
        backend.generate(prompts, greedy, "completion", adapter=str(tmp_path / "elsewhere"))
    mapped = registry.make_backend(
        "openai",
        "tiny",
        {"base_url": vllm_server, "model": "tiny", "chat": False, "adapters": {str(tmp_path / "copy"): "round1"}},
    )
    assert [c.text for c in mapped.generate(prompts, greedy, "completion", adapter=str(tmp_path / "copy"))] == adapted


@pytest.mark.slow
def test_iterate_round_2_answers_through_the_servers_adapter(vllm_server, served_adapter):
    """`selfspec iterate` with backend openai: round 2's responses come from round 1's adapter, served by the
    server. (Round 1's "training" here keeps the adapter the server already serves from round 1's output_dir.)"""
    import yaml

    from selfspec_plugin.iterate import iterate, record_training

    recipe = served_adapter.parent / "recipe.yml"
    raw = {
        "base_model": "tiny",
        "output_dir": str(served_adapter),
        "selfspec": {
            **SMALL,
            "num_instructions": 4,
            "backend": "openai",
            "filters": ["start", "length", "blacklist", "novelty"],  # a random adapter's answers run long
            "backend_options": {"base_url": vllm_server, "model": "tiny", "chat": False},
        },
    }
    recipe.write_text(yaml.safe_dump(raw))

    def train(path):
        cfg = yaml.safe_load(path.read_text())
        generate(make_job(cfg["selfspec"], cfg["base_model"], cfg["output_dir"]), progress=False)
        out = Path(cfg["output_dir"])
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "adapter_model.safetensors").is_file():  # round 2: a stand-in; nothing serves it later
            (out / "adapter_config.json").write_text(json.dumps({"r": 8}))
            (out / "adapter_model.safetensors").write_bytes(b"x")
        record_training(str(path), str(out))

    rounds = iterate(recipe, raw, 2, train=train)
    changed, compared = rounds[1]["changed_responses"]
    assert compared > 0 and changed > 0  # the served adapter wrote round 2's answers


def test_vllm_engine_receives_the_stage_sampling_the_stop_strings_and_a_seed_per_item():
    from selfspec_plugin.backends.base import item_seed
    from selfspec_plugin.backends.vllm import sampling_params
    from selfspec_plugin.prompts import response_prompt

    seeds = load_seeds(SEEDS)
    brainstorm = brainstorm_prompt("r0-p1", seeds[:3], "biomedicine")
    params = sampling_params(Sampling(1.0, 0.98, 320, 42), brainstorm)
    assert (params.temperature, params.top_p, params.max_tokens) == (1.0, 0.98, 320)
    assert params.stop == ["6. Instruction", "7. Instruction", "Output:"] and params.seed == item_seed(42, "r0-p1")
    greedy = sampling_params(
        Sampling(0.0, 1.0, 512, 42), response_prompt("r0-p1-0", seeds[3], seeds[:5], "biomedicine")
    )
    assert (greedy.temperature, greedy.top_p, greedy.stop) == (0.0, 1.0, ["###"])
    assert greedy.sampling_type.name == "GREEDY"


def test_chat_model_needs_a_template_that_ends_turns_with_the_models_eos(tiny_model, tmp_path):
    from tiny_model import CHAT_TEMPLATE
    from transformers import AutoTokenizer

    from selfspec_plugin.backends import chat_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert not chat_model(tokenizer)  # no template: a base model
    tokenizer.chat_template = CHAT_TEMPLATE  # turns end with </s>, the eos token: a chat model
    assert chat_model(tokenizer)
    tokenizer.chat_template = CHAT_TEMPLATE.replace("</s>", "<|end|>")  # a family template a base model never learnt
    assert not chat_model(tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|end|>"]})  # ...unless the model stops on it too
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, end]}))
    assert chat_model(tokenizer, str(tmp_path))


def test_auto_prompt_format_follows_chat_model_not_the_template():
    from types import SimpleNamespace

    from selfspec_plugin.pipeline import resolve_prompt_format

    base_with_template = SimpleNamespace(chat_capable=True, chat_model=False)
    assert resolve_prompt_format("auto", base_with_template) == "completion"
    assert resolve_prompt_format("auto", SimpleNamespace(chat_capable=True, chat_model=True)) == "chat"
    assert resolve_prompt_format("chat", base_with_template) == "chat"  # asked for: the template is used
    with pytest.raises(SelfSpecError, match="prompt_format: 'chat' needs a tokenizer with a chat template"):
        resolve_prompt_format("chat", SimpleNamespace(chat_capable=False, chat_model=False))


def test_seeded_sampler_draws_per_row_within_top_p():
    import torch

    from selfspec_plugin.backends.transformers import seeded_sampler

    scores = torch.zeros(3, 50)
    scores[:, 7] = 5.0  # p(7) ~ 0.75: top_p 0.5 keeps only token 7
    only_top = seeded_sampler(torch, [1, 2, 3], 1.0, 0.5, "cpu")(None, scores)
    assert only_top.argmax(-1).tolist() == [7, 7, 7] and torch.isfinite(only_top).sum().item() == 3

    flat = torch.zeros(2, 1000)
    draws = [seeded_sampler(torch, [11, 11 + k], 1.0, 1.0, "cpu")(None, flat).argmax(-1).tolist() for k in (1, 2)]
    assert draws[0][0] == draws[1][0]  # the same seed draws the same token whatever its neighbours
    assert len({draws[0][1], draws[1][1], draws[0][0]}) > 1  # different seeds draw differently
