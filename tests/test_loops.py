"""The loop rule (selfspec_plugin/loops.py) on crafted token sequences: loops of several periods are caught once
they repeat their cycle MIN_COPIES times over at least MIN_RUN tokens; answers that look repetitive (lists, tables,
a phrase said twice, a loop that ends) are not."""

import random

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
