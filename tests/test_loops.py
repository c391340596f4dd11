"""The loop rule (selfspec_plugin/loops.py) on crafted token sequences: loops of several periods are caught once
they repeat their cycle MIN_COPIES times over at least MIN_RUN tokens; answers that look repetitive (lists, tables,
a phrase said twice, a loop that ends) are not."""

import random
from dataclasses import replace

import pytest

from selfspec_plugin.loops import MAX_PERIOD, MIN_COPIES, MIN_RUN, first_loop, loop_run, looping


def words(n: int, seed: int = 0) -> list[int]:
    """n token ids with no repeat of any length (a fluent answer, as far as the rule can tell)."""
    return random.Random(seed).sample(range(1000, 50000), n)


@pytest.mark.parametrize("period", [1, 2, 5, 16, 30, 64])
def test_a_loop_is_caught_where_its_cycle_has_repeated_enough(period):
    cycle = words(period, seed=period)
    answer = words(20) + cycle * 40
    cut = first_loop(answer)
    # the cycle must be seen MIN_COPIES times in a row and its repeats cover MIN_RUN tokens
    assert cut == 20 + period + max(MIN_RUN, (MIN_COPIES - 1) * period)
    assert looping(answer[:cut]) and not looping(answer[: cut - 1])
    assert loop_run(answer[:cut])[0] == period


def test_a_cycle_longer_than_max_period_is_not_a_loop_for_it():
    cycle = words(MAX_PERIOD + 1)
    assert first_loop(cycle * 5) is None
    assert first_loop(cycle * 5, max_period=MAX_PERIOD + 1) == (MAX_PERIOD + 1) * MIN_COPIES


def test_the_greedy_loop_of_a_real_answer_is_caught():
    # "The CDF is used to calculate the probability of a specific event occurring." said over and over
    sentence = [504, 335, 37, 314, 260, 1013, 288, 9150, 260, 3503, 281, 253, 1678, 1197, 14106, 30]
    answer = words(30) + sentence * 6
    assert first_loop(answer) == 30 + len(sentence) * MIN_COPIES


@pytest.mark.parametrize(
    "answer",
    [
        words(200),  # fluent text
        # a numbered list: the same frame every line, different content
        [t for i in range(20) for t in (100 + i, 13, 2000 + 3 * i, 2001 + 3 * i, 2002 + 3 * i, 198)],
        # a table: the same separator cells between different values
        [t for i in range(30) for t in (124, 3000 + i, 124, 4000 + i, 124, 198)],
        # "yes, yes, no, yes": a short label list that stops
        [5000, 11, 5000, 11, 6000, 11, 5000, 11, 5000],
        # a phrase said three times in a row, then the answer goes on: a lapse, not a loop
        words(10) + words(12, seed=3) * 3 + words(40, seed=4),
        # a short cycle that repeats many times but covers fewer than MIN_RUN tokens
        words(5) + [7, 8] * (MIN_RUN // 2 - 1),
    ],
    ids=["fluent", "numbered-list", "table", "labels", "thrice-then-on", "short-run"],
)
def test_answers_that_only_look_repetitive_are_not_cut(answer):
    assert first_loop(answer) is None


def test_too_short_and_empty_sequences_are_never_loops():
    assert not looping([])
    assert not looping([1] * MIN_RUN)  # MIN_RUN repeats need MIN_RUN + 1 tokens
    assert looping([1] * (MIN_RUN + 1))


CYCLE = [500, 501, 502, 503, 504]  # token ids of the tiny model's vocabulary: ordinary word pieces


@pytest.fixture(scope="module")
def looping_model(tiny_model, tmp_path_factory):
    """The tiny test model rewired to loop: attention and MLPs write nothing, so each next token depends on the
    last token alone, and the LM head sends every token into the cycle CYCLE (period 5) and round it. Greedy
    decoding from any prompt then repeats CYCLE to the cap, in both backends."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("looping")
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    vocab, hidden = model.config.vocab_size, model.config.hidden_size
    basis = torch.eye(hidden) * hidden**0.5  # rows of RMS 1: the final norm leaves them as they are
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed = basis[len(CYCLE)].repeat(vocab, 1)  # every other token: one direction, read as "go to CYCLE[0]"
        embed[CYCLE] = basis[: len(CYCLE)]
        head = torch.zeros(vocab, hidden)
        for i, token in enumerate(CYCLE):
            head[CYCLE[(i + 1) % len(CYCLE)]] += basis[i]
        head[CYCLE[0]] += basis[len(CYCLE)]
        model.model.embed_tokens.weight.copy_(embed)
        model.model.norm.weight.fill_(1.0)
        model.config.tie_word_embeddings = False
        model.lm_head.weight = torch.nn.Parameter(head)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["transformers", "vllm"])
def test_a_loop_is_stopped_early_and_still_rejected_as_cut_at_the_cap(looping_model, backend_name):
    """Greedy answers and sampled brainstorms of a model that can only loop: with stop_loops each ends once the cycle
    has come round MIN_COPIES times, and is reported as cut at the cap (the pipeline's `truncated_response` and
    `truncated`), the same verdict and the same beginning as decoding to the cap, for a fraction of its tokens."""
    from conftest import ROOT

    from selfspec_plugin import registry
    from selfspec_plugin.backends import Sampling
    from selfspec_plugin.filters import response_check
    from selfspec_plugin.prompts import brainstorm_prompt, parse_brainstorm, response_prompt
    from selfspec_plugin.seeds import load_seeds

    seeds = load_seeds(ROOT / "tests" / "data" / "seeds.jsonl")
    answers = [response_prompt(f"r{i}", seeds[i], seeds[:5], "biomedicine") for i in range(3)]
    brainstorms = [brainstorm_prompt(f"b{i}", seeds[i : i + 3], "biomedicine") for i in range(2)]
    options = {"max_model_len": 1024} if backend_name == "vllm" else {}
    backend = registry.make_backend(backend_name, str(looping_model), options)
    try:
        for prompts, sampling in ((answers, Sampling(0.0, 1.0, 96, 42)), (brainstorms, Sampling(1.0, 0.98, 96, 42))):
            to_cap = backend.generate(prompts, sampling, "completion")
            stopped = backend.generate(prompts, replace(sampling, stop_loops=True), "completion")
            for prompt, full, cut in zip(prompts, to_cap, stopped):
                assert (full.finish_reason, full.tokens) == ("length", 96)
                # ended where the rule first fires (vLLM also counts the end token it forced)
                assert cut.finish_reason == "length" and cut.tokens - first_loop(CYCLE * 20) in (0, 1)
                assert full.text.startswith(cut.text) and cut.text
                if prompts is answers:
                    verdicts = [
                        response_check({"output": c.text, "finish_reason": c.finish_reason}) for c in (full, cut)
                    ]
                    assert verdicts == ["truncated_response"] * 2
                else:
                    verdicts = [
                        [item.get("rejected") for item in parse_brainstorm(prompt.prefix, c.text, True)]
                        for c in (full, cut)
                    ]
                    assert verdicts[0] == verdicts[1] and verdicts[1][-1] in ("truncated", "unparseable")
    finally:
        backend.close()


def test_stop_loops_is_part_of_the_run_key_and_false_finds_the_runs_made_before_it():
    """On by default, it changes what a run generates (the loops it cuts, and through the engine's batches other
    greedy answers: docs/benchmarks.md), so a default run gets a key of its own; false is the old behaviour and keys."""
    from selfspec_plugin.config import SelfSpecConfig
    from selfspec_plugin.rundirs import identity, run_key

    def inputs(**settings) -> dict:
        return {"model": {"sha256": "m"}, "settings": SelfSpecConfig(seeds="s.jsonl", **settings).model_dump()}

    assert SelfSpecConfig(seeds="s.jsonl").stop_loops is True
    assert identity(inputs())["settings"] == {
        "stop_loops": True,
        "fast_top_p": True,
        "stop_at_quota": True,
        "rounds_per_call": 8,
    }
    # what the key hashed before the settings existed
    assert (
        identity(inputs(stop_loops=False, fast_top_p=False, stop_at_quota=False, rounds_per_call=1))["settings"] == {}
    )
    assert run_key(inputs()) != run_key(inputs(stop_loops=False))
