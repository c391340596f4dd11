"""`selfspec.fast_top_p`: top-p sampling from the top of the distribution (backends/nucleus.py) draws from vLLM's own
nucleus with the nucleus's probabilities, at every stage of its search; the vLLM engine runs it per request."""

import pytest
import torch

from selfspec_plugin.backends import nucleus
from selfspec_plugin.backends.base import Sampling


def grid(n: int) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float32) + 0.5) / n  # evenly spread uniforms: draws in exact proportions


def draws(logits: torch.Tensor, temperature: float, top_p: float, n: int = 20000) -> torch.Tensor:
    rows = logits.expand(n, -1)
    return nucleus.draw(rows, torch.full((n,), temperature), torch.full((n,), top_p), grid(n))


def vllm_nucleus(logits: torch.Tensor, top_p: float) -> set[int]:
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    kept = apply_top_k_top_p_pytorch(logits.clone()[None], None, torch.tensor([top_p]), allow_cpu_sync=True)[0]
    return set(torch.isfinite(kept).nonzero().squeeze(-1).tolist())


@pytest.mark.parametrize("vocabulary, top_p", [(50, 0.9), (50, 0.5), (3000, 0.95)])
def test_draws_cover_exactly_vllms_nucleus_in_its_proportions(vocabulary, top_p):
    """Small vocabularies (the first candidates hold the nucleus) and 3,000 flatter tokens at 0.95 (a nucleus wider
    than the first 1,024 candidates: the second stage)."""
    torch.manual_seed(vocabulary)
    logits = torch.randn(vocabulary) * (3.0 if vocabulary == 50 else 0.5)
    inside = vllm_nucleus(logits, top_p)
    assert len(inside) > (nucleus.TOPS[0] if vocabulary == 3000 else 1)
    n = 10000
    got = torch.bincount(draws(logits, 1.0, top_p, n), minlength=vocabulary)
    assert set(got.nonzero().squeeze(-1).tolist()) <= inside  # nothing outside vLLM's nucleus
    probs = torch.softmax(logits, -1)
    ids = torch.tensor(sorted(inside))
    expected = n * probs[ids] / probs[ids].sum()
    assert torch.allclose(got[ids].float(), expected, atol=1.5)  # a grid of uniforms: each share to a draw


def test_a_nucleus_wider_than_every_candidate_list_is_drawn_from_the_whole_ranked_row():
    """40,000 nearly flat tokens at 0.98: the nucleus is wider than the last candidate list, so the row is ranked
    whole; every draw is the one the plain definition gives (sort, keep, invert the cumulative distribution), or its
    neighbour in rank where float32 rounding puts a target on a boundary."""
    torch.manual_seed(3)
    logits = torch.randn(40000) * 0.05
    inside = vllm_nucleus(logits, 0.98)
    assert len(inside) > nucleus.TOPS[-1]
    ranked, order = torch.softmax(logits, -1).sort(descending=True)
    cumulative = ranked.cumsum(-1)
    keep = int(((cumulative - ranked) < 0.98).sum())
    assert set(order[:keep].tolist()) == inside
    uniform = grid(300)
    expected = order[torch.searchsorted(cumulative[:keep], uniform * cumulative[keep - 1], right=True)]
    rank = {token: i for i, token in enumerate(order.tolist())}
    apart = [abs(rank[a] - rank[b]) for a, b in zip(draws(logits, 1.0, 0.98, 300).tolist(), expected.tolist())]
    # float32 sums of 40,000 near-equal shares round differently: a target on a boundary may fall one token over
    assert max(apart) <= 1 and sum(apart) <= 10


def test_top_p_one_draws_the_softmax_and_temperature_sharpens_it():
    torch.manual_seed(0)
    logits = torch.randn(30) * 2
    n = 30000
    whole = torch.bincount(draws(logits, 1.0, 1.0, n), minlength=30).float()
    assert torch.allclose(whole, n * torch.softmax(logits, -1), atol=1.5)
    cold = torch.bincount(draws(logits, 0.5, 1.0, n), minlength=30).float()
    assert torch.allclose(cold, n * torch.softmax(logits * 2, -1), atol=1.5)


def test_each_row_is_drawn_by_its_own_uniform_whatever_its_neighbours():
    torch.manual_seed(1)
    logits = torch.randn(4, 5000) * 4
    temperature, top_p, uniform = torch.tensor([1.0, 0.7, 1.0, 1.0]), torch.tensor([0.98, 0.9, 1.0, 0.3]), torch.rand(4)
    together = nucleus.draw(logits, temperature, top_p, uniform)
    alone = [
        nucleus.draw(logits[i : i + 1], temperature[i : i + 1], top_p[i : i + 1], uniform[i : i + 1]) for i in range(4)
    ]
    assert together.tolist() == torch.cat(alone).tolist()
    tiny_p = nucleus.draw(logits, torch.ones(4), torch.full((4,), 1e-6), uniform)
    assert tiny_p.tolist() == logits.argmax(-1).tolist()  # a nucleus of one: the most probable token


def test_vllm_requests_carry_the_sampler_instead_of_the_engines_sampling():
    from selfspec_plugin.backends.base import item_seed
    from selfspec_plugin.backends.vllm import SAMPLE_KEY, STOP_LOOPS_KEY, sampling_params
    from selfspec_plugin.prompts import Prompt

    prompt = Prompt(id="r0-p1", text="x", messages=(), stop=("###",))
    ours = sampling_params(Sampling(1.0, 0.98, 320, 42, stop_loops=True, fast_top_p=True), prompt, eos_token_id=1)
    assert ours.sampling_type.name == "GREEDY" and ours.seed is None and ours.top_p == 1.0
    assert ours.extra_args == {SAMPLE_KEY: [1.0, 0.98, item_seed(42, "r0-p1")], STOP_LOOPS_KEY: 1}
    greedy = sampling_params(Sampling(0.0, 1.0, 64, 42, fast_top_p=True), prompt)
    assert greedy.extra_args is None  # nothing to sample
    grammar = Prompt(id="g", text="x", messages=(), pattern="[a-z]+")
    engine = sampling_params(Sampling(1.0, 0.98, 64, 42, fast_top_p=True), grammar)
    assert engine.extra_args is None and engine.top_p == 0.98  # a grammar's tokens stay the engine's to choose


@pytest.mark.slow
def test_the_engine_draws_per_request_and_a_nucleus_of_one_is_greedy(tiny_model):
    """Through a real vLLM engine: a request's tokens do not depend on the requests beside it, a request's seed
    changes them, and top-p small enough to keep one token gives the greedy answer token for token."""
    from dataclasses import replace

    from selfspec_plugin import registry
    from selfspec_plugin.prompts import Prompt

    prompts = [Prompt(id=f"p{i}", text=f"Question {i}: what is a gene?", messages=()) for i in range(4)]
    backend = registry.make_backend("vllm", str(tiny_model), {"max_model_len": 512})
    try:
        sampled = Sampling(1.0, 0.98, 24, 7, fast_top_p=True)
        together = backend.generate(prompts, sampled, "completion")
        alone = backend.generate(prompts[2:3], sampled, "completion")
        assert alone[0].text == together[2].text
        assert len({c.text for c in together}) == 4
        assert backend.generate(prompts[2:3], replace(sampled, seed=8), "completion")[0].text != alone[0].text
        greedy = backend.generate(prompts, Sampling(0.0, 1.0, 24, 7), "completion")
        one = backend.generate(prompts, replace(sampled, top_p=1e-6), "completion")
        assert [c.text for c in one] == [c.text for c in greedy]
    finally:
        backend.close()


def test_a_request_the_engine_takes_up_again_continues_its_stream():
    """vLLM recomputes a preempted request by adding it to the batch again with the tokens it had generated: its
    stream goes on from there instead of repeating its first numbers."""
    import random

    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate

    from selfspec_plugin.backends.vllm import SAMPLE_KEY
    from selfspec_plugin.backends.vllm_sampler import TopPSampler

    sampler = TopPSampler(None, torch.device("cpu"), False)
    params = SamplingParams(temperature=0.0, extra_args={SAMPLE_KEY: [1.0, 0.9, 17]})
    added = [(0, params, [1, 2], []), (1, params, [1, 2], [5, 6, 7]), (2, SamplingParams(), [1], [])]
    sampler.update_state(BatchUpdate(batch_size=3, removed=[], added=added, moved=[]))
    stream = random.Random(17)
    first = [stream.random() for _ in range(4)]
    assert sorted(sampler.requests) == [0, 1]  # a request without the key is the engine's
    assert sampler.requests[0].stream.random() == first[0] and sampler.requests[1].stream.random() == first[3]
