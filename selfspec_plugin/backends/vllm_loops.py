"""The vLLM side of `selfspec.stop_loops`: a logits processor that ends a request once its output has begun to
repeat itself (loops.looping), by leaving the end-of-sequence token as its only choice. vLLM loads it by name
(`logits_processors=["selfspec_plugin.backends.vllm_loops:StopLoops"]`) in whichever process samples, so this
module imports vLLM at the top; nothing else imports it. It acts only on requests whose
`SamplingParams.extra_args` carry STOP_LOOPS_KEY (the end-of-sequence id to force).
"""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from ..loops import looping
from .vllm import STOP_LOOPS_KEY


class StopLoops(AdapterLogitsProcessor):
    def is_argmax_invariant(self) -> bool:
        return False  # it changes greedy requests too: that is its point

    def new_req_logits_processor(self, params):
        eos = (params.extra_args or {}).get(STOP_LOOPS_KEY)
        if eos is None:
            return None

        def stop(output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
            if not looping(output_ids):
                return logits
            forced = torch.full_like(logits, float("-inf"))
            forced[eos] = 0.0
            return forced

        return stop
