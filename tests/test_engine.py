"""The vLLM backend on the packaged SmolLM2 in bfloat16: what a resumed run relies on (docs/reliability.md).

The prefix cache is on at every precision (the instructions header that every brainstorming prompt shares is
computed once per call), and emptied at the start of every call: a chunk then gives the same outputs whatever ran
before it in the engine, so a resumed chunk matches the uninterrupted one. The tests' tiny model cannot show this
(its outputs did not move with or without the reset); SmolLM2 does: without the reset, 1 of 8 sampled outputs
changed when the same call ran again (its prompts found in the cache in full), measured on this project's 2-core
AVX512-BF16 machine."""

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_a_bf16_call_gives_the_same_outputs_whatever_the_prefix_cache_held(demo_model):
    from selfspec_plugin.backends import Sampling
    from selfspec_plugin.backends.vllm import VLLMBackend
    from selfspec_plugin.pipeline import sample_seeds
    from selfspec_plugin.prompts import brainstorm_prompt
    from selfspec_plugin.seeds import load_seeds

    seeds = load_seeds(ROOT / "seeds" / "biomed.jsonl")

    def chunk(tag: str) -> list:
        return [
            brainstorm_prompt(f"{tag}-p{i}", sample_seeds(seeds, 3, f"{tag}{i}"), "biomedicine", 1) for i in range(8)
        ]

    backend = VLLMBackend(str(demo_model), {"dtype": "bfloat16", "max_model_len": 2048})
    try:
        assert backend.llm.llm_engine.vllm_config.cache_config.enable_prefix_caching
        sampling = Sampling(1.0, 0.98, 48, 42)  # the paper's brainstorming sampling, shorter

        def texts(tag: str) -> list[str]:
            return [c.text for c in backend.generate(chunk(tag), sampling, "chat")]

        first = texts("y")
        texts("x")  # another chunk: its prompts share the header with the next call's
        again = texts("y")  # the same prompts, every block of them computed before
    finally:
        backend.close()
    assert all(first) and len(set(first)) > 1
    assert again == first
