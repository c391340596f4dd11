"""The vLLM backend on the packaged SmolLM2 in bfloat16: what a resumed run relies on (docs/reliability.md).

The prefix cache is on at every precision (the instructions header that every brainstorming prompt shares is
computed once per call), and emptied at the start of every call: a chunk then gives the same outputs whatever ran
before it in the engine, so a resumed chunk matches the uninterrupted one. The tests' tiny model cannot show this
(its outputs did not move with or without the reset); SmolLM2 does: without the reset, 1 of 8 sampled outputs
changed when the same call ran again (its prompts found in the cache in full), measured on this project's 2-core
AVX512-BF16 machine. A call that may stop early (`stop_at_quota`) or streams several rounds through a window
(`rounds_per_call`) runs the engine's steps itself: the same outputs up to its stop. One engine serves the module."""

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_bf16(demo_model):
    """The demo recipe's engine (SmolLM2-135M in bfloat16, the engine in this process), started once for the module:
    every call empties its prefix cache, so a test sees the engine as a fresh one."""
    from selfspec_plugin.backends.vllm import VLLMBackend

    backend = VLLMBackend(str(demo_model), {"dtype": "bfloat16", "max_model_len": 2048})
    yield backend
    backend.close()


def brainstorms(tag: str, n: int) -> list:
    from selfspec_plugin.pipeline import sample_seeds
    from selfspec_plugin.prompts import brainstorm_prompt
    from selfspec_plugin.seeds import load_seeds

    seeds = load_seeds(ROOT / "seeds" / "biomed.jsonl")
    return [brainstorm_prompt(f"{tag}-p{i}", sample_seeds(seeds, 3, f"{tag}{i}"), "biomedicine", 1) for i in range(n)]


def test_a_bf16_call_gives_the_same_outputs_whatever_the_prefix_cache_held(smollm2_bf16):
    from selfspec_plugin.backends import Sampling

    backend = smollm2_bf16
    assert backend.llm.llm_engine.vllm_config.cache_config.enable_prefix_caching
    sampling = Sampling(1.0, 0.98, 48, 42)  # the paper's brainstorming sampling, shorter

    def texts(tag: str) -> list[str]:
        return [c.text for c in backend.generate(brainstorms(tag, 8), sampling, "chat")]

    first = texts("y")
    texts("x")  # another chunk: its prompts share the header with the next call's
    again = texts("y")  # the same prompts, every block of them computed before
    assert all(first) and len(set(first)) > 1
    assert again == first


def test_the_engines_step_loop_gives_generates_outputs_and_stops_where_it_is_told(smollm2_bf16):
    """`stop_at_quota` (tests/test_quota_stop.py): SmolLM2's brainstorming items end at different lengths (the tests'
    tiny model writes to the cap), in bfloat16, where a request's numbers depend on its batch: the same batch, step
    by step, until the stop."""
    from selfspec_plugin.backends import Sampling

    backend, prompts = smollm2_bf16, brainstorms("q", 8)
    sampling = Sampling(1.0, 0.98, 64, 42, stop_loops=True, fast_top_p=True)
    plain = backend.generate(prompts, sampling, "chat")
    looped = backend.generate(prompts, sampling, "chat", enough=lambda done: False)
    asked = []
    stopped = backend.generate(prompts, sampling, "chat", enough=lambda done: asked.append(len(done)) or len(done) >= 2)
    after = backend.generate(prompts, sampling, "chat")  # the aborted requests left nothing in the engine
    assert looped == plain == after  # the same requests through the engine's steps: the same completions
    assert sorted(c.tokens for c in plain)[1] < max(c.tokens for c in plain)  # 2 end before the last: a stop to make
    finished = [i for i, c in enumerate(stopped) if c.finish_reason != "abort"]
    assert asked[-1] >= 2 and len(finished) == asked[-1] < len(prompts)
    for i, (full, cut) in enumerate(zip(plain, stopped)):
        if i in finished:
            assert cut == full
        else:  # what it had written when it was stopped: the beginning of what it would have written
            assert 0 < cut.tokens < full.tokens and full.text.startswith(cut.text)


def test_a_window_keeps_that_many_requests_in_the_engine_and_starts_the_next_as_one_finishes(smollm2_bf16, monkeypatch):
    """`rounds_per_call`: 8 brainstorming requests through a window of 3. The engine never holds more than 3, holds 3
    while requests are waiting, and every request completes; stopped at 2 finished, those never started come back
    empty. (In bfloat16 a request's numbers depend on its batch, so the texts are not compared with a plain call's.)"""
    from selfspec_plugin.backends import Sampling

    backend, prompts = smollm2_bf16, brainstorms("w", 8)
    sampling = Sampling(1.0, 0.98, 32, 42, stop_loops=True, fast_top_p=True)
    engine, held = backend.llm.llm_engine, []
    step = engine.step
    monkeypatch.setattr(engine, "step", lambda: held.append(engine.get_num_unfinished_requests()) or step())
    windowed = backend.generate(prompts, sampling, "chat", window=3)
    assert max(held) == 3 and held.count(3) > 1 and held[-1] < 3
    assert all(c.finish_reason in ("stop", "length") and c.tokens > 0 for c in windowed)

    held.clear()
    stopped = backend.generate(prompts, sampling, "chat", window=2, enough=lambda done: len(done) >= 2)
    assert max(held) == 2
    finished = [c for c in stopped if c.finish_reason != "abort"]
    unstarted = [c for c in stopped if c.finish_reason == "abort" and c.tokens == 0]
    assert len(finished) == 2 and len(unstarted) >= 4 and all(c.text == "" for c in unstarted)
    assert not engine.has_unfinished_requests()  # the running ones aborted, the rest never added
