"""Has a generation begun to repeat itself? One pure rule on token ids, shared by the backends that stop a looping
request early (vLLM through a logits processor, transformers through a stopping criterion) and by the check that
reports such a request as cut at its cap, so the pipeline rejects it (`truncated`, `truncated_response`) exactly
as it rejected the same request decoded to the cap. Standard library only: the engines' workers import it.

The rule: the tail of the sequence is periodic, i.e. for some period p <= MAX_PERIOD the last `run` tokens each
equal the token p places before them, and that repeated run is both long (>= MIN_RUN tokens) and at least
MIN_COPIES - 1 whole extra copies of the cycle. A greedy decoder that has copied one cycle of >= MIN_RUN tokens
from its own output is in a state it entered before and, in practice, never leaves it before the cap. The
thresholds were chosen on real generations with SmolLM2-135M's tokenizer (docs/benchmarks.md, "B7 and issue 32"):
at these values the rule cuts none of the kept outputs measured there.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_PERIOD = 64  # the longest cycle looked for, in tokens: a repeated sentence of SmolLM2's greedy answers fits
MIN_RUN = 16  # tokens of the tail that must repeat the tokens one period before them
MIN_COPIES = 4  # the cycle must show up at least this many times in a row (3 extra copies)


def loop_run(token_ids: Sequence[int], max_period: int = MAX_PERIOD) -> tuple[int, int]:
    """(period, run) of the longest periodic tail: the last `run` tokens each equal the one `period` before; (0, 0)
    when no period <= max_period repeats even one token. Ties go to the shortest period."""
    n = len(token_ids)
    best = (0, 0)
    for p in range(1, min(max_period, n - 1) + 1):
        run = 0
        while run < n - p and token_ids[n - 1 - run] == token_ids[n - 1 - run - p]:
            run += 1
        if run > best[1]:
            best = (p, run)
    return best


def looping(
    token_ids: Sequence[int], max_period: int = MAX_PERIOD, min_run: int = MIN_RUN, min_copies: int = MIN_COPIES
) -> bool:
    """True when the sequence ends in a loop: a cycle of p <= max_period tokens repeated so that its tail's repeat
    covers >= min_run tokens and >= (min_copies - 1) * p of them (the cycle seen min_copies times in a row)."""
    n = len(token_ids)
    if n < min_run + 1:
        return False
    # Called for every request at every decoding step: only a period p at which the last token recurs can repeat,
    # and list.index finds those in C (in fluent text, few or none), nearest first
    last = token_ids[-1]
    before = list(token_ids[-1 - min(max_period, n - 1) : -1])[::-1]  # before[p - 1] is the token p places back
    p = 0
    while True:
        try:
            p = before.index(last, p) + 1
        except ValueError:
            return False
        need = max(min_run, (min_copies - 1) * p)
        if need > n - p:  # not enough tokens for this period, nor for any longer one
            return False
        run = 1
        while run < need and token_ids[n - 1 - run] == token_ids[n - 1 - run - p]:
            run += 1
        if run >= need:
            return True


def first_loop(token_ids: Sequence[int], **rule) -> int | None:
    """The length of the shortest prefix that `looping` calls a loop (where a backend would have stopped), or None."""
    for end in range(1, len(token_ids) + 1):
        if looping(token_ids[:end], **rule):
            return end
    return None
