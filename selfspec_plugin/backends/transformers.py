"""Hugging Face transformers backend: the fallback where vLLM is not available (batched, left padding).

Requests are generated in batches. Sampled requests are drawn by a logits processor that keeps one
random generator per row, seeded from the run seed and the item's id (what vLLM does with per-request
seeds), so a resumed chunk draws the same tokens as the first attempt.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from ..loops import looping
from .base import Backend, Completion, Sampling, chat_model, item_seed, prompt_lengths, render


def seeded_sampler(torch, seeds: list[int], temperature: float, top_p: float, device: str):
    """A logits processor: temperature and top-p, then one draw per row from that row's own generator.

    It leaves only the drawn token finite, so greedy decoding (`do_sample=False`) emits exactly the draw.
    """
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def process(input_ids, scores):
        probs = torch.softmax(scores.float() / temperature, dim=-1)
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p  # the first token is always kept
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        picks = torch.stack([torch.multinomial(sorted_probs[i], 1, generator=g) for i, g in enumerate(generators)])
        chosen = order.gather(-1, picks)
        return torch.full_like(scores, float("-inf")).scatter(-1, chosen, 0.0)

    return process


def loop_stopper(torch, prompt_length: int):
    """A stopping criterion: a row whose generated tokens (after the `prompt_length` tokens of the padded prompts)
    have begun to repeat themselves (loops.looping) is done; its tokens so far are kept, the rest padded."""
    from transformers import StoppingCriteria

    class StopLoops(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            rows = input_ids[:, prompt_length:].tolist()
            return torch.tensor([looping(row) for row in rows], dtype=torch.bool, device=input_ids.device)

    return StopLoops()


class TransformersBackend(Backend):
    name = "transformers"
    serves_adapters = True  # PEFT, one named adapter per directory
    stops_loops = True  # `Sampling.stop_loops`: a stopping criterion (loop_stopper)
    not_output = frozenset({"batch_size", "device"})

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        device: Optional[str] = Field(None, description="cuda, cpu, ...; default: cuda when there is one")
        dtype: Optional[str] = Field(None, description="default: bfloat16 on CUDA, float32 on CPU")
        batch_size: int = Field(16, gt=0)

    def __init__(self, model: str, options: dict):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        remote = bool(options.get("trust_remote_code", False))
        o = self.Options(**{k: v for k, v in options.items() if k != "trust_remote_code"})  # the defaults live there
        self.device = o.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = o.dtype or ("bfloat16" if self.device == "cuda" else "float32")
        self.tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left", trust_remote_code=remote)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = (
            AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype), trust_remote_code=remote)
            .to(self.device)
            .eval()
        )
        self.batch_size = o.batch_size
        self.adapters: dict[str, str] = {}  # adapter directory -> its PEFT adapter name
        self.stop_strings: dict[tuple, object] = {}  # stop strings -> their StopStringCriteria (_stop_criterion)
        self.chat_capable = bool(getattr(self.tokenizer, "chat_template", None))
        self.chat_model = chat_model(self.tokenizer, model)
        self.context_tokens = getattr(self.model.config, "max_position_embeddings", None)

    def prompt_tokens(self, prompts: list, prompt_format: str) -> list[int]:
        return prompt_lengths(self.tokenizer, prompts, prompt_format)

    def _model(self, adapter: str | None):
        """The model to generate with: the base, or the base with one of its LoRA adapters (PEFT, each loaded once
        under its own name and switched to per call)."""
        from contextlib import nullcontext

        if adapter is None:
            return self.model, (self.model.disable_adapter() if self.adapters else nullcontext())
        if adapter not in self.adapters:
            from peft import PeftModel

            name = self.adapters[adapter] = f"adapter-{len(self.adapters) + 1}"
            if len(self.adapters) == 1:
                self.model = PeftModel.from_pretrained(self.model, adapter, adapter_name=name).eval()
            else:
                self.model.load_adapter(adapter, adapter_name=name)
        self.model.set_adapter(self.adapters[adapter])
        return self.model, nullcontext()

    def _stop_criterion(self, stop: tuple[str, ...]):
        """transformers' criterion for these stop strings, built once per backend: building one embeds every token
        of the vocabulary (seconds on a large one, in every batch when passed as `stop_strings=`), and transformers'
        own cache of them never hits, as its key holds `get_vocab()`'s order, which differs from call to call
        (measured in docs/benchmarks.md, B2)."""
        if stop not in self.stop_strings:
            from transformers import StopStringCriteria

            self.stop_strings[stop] = StopStringCriteria(self.tokenizer, list(stop))
        return self.stop_strings[stop]

    def _run(
        self, texts: list[str], prompts: list, sampling: Sampling, prompt_format: str, adapter: str | None
    ) -> list[Completion]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        enc = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=(prompt_format == "completion")
        )
        enc = enc.to(self.device)
        stop = sorted({s for p in prompts for s in p.stop})
        kwargs = {
            "do_sample": False,
            "max_new_tokens": sampling.max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sampling.temperature > 0:
            seeds = [item_seed(sampling.seed, p.id) for p in prompts]
            sampler = seeded_sampler(self.torch, seeds, sampling.temperature, sampling.top_p, self.device)
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        criteria = [self._stop_criterion(tuple(stop))] if stop else []
        if sampling.stop_loops:
            criteria.append(loop_stopper(self.torch, enc["input_ids"].shape[1]))
        if criteria:
            kwargs["stopping_criteria"] = StoppingCriteriaList(criteria)
        model, context = self._model(adapter)
        with self.torch.no_grad(), context:
            out = model.generate(**enc, **kwargs)
        configured = model.generation_config.eos_token_id
        ends = {
            self.tokenizer.eos_token_id,
            self.tokenizer.pad_token_id,
            *(configured if isinstance(configured, list) else [configured]),
        } - {None}
        results = []
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            end = next((i for i, tok in enumerate(row) if tok in ends), None)  # finished rows are padded
            tokens = row if end is None else row[:end]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            cut = min((text.find(s) for s in stop if s in text), default=-1)
            # cut at the cap, or ended by loop_stopper (a row that ends in a loop: it would have run on to the cap);
            # a stop string met on the same token wins, as it does in vLLM
            truncated = cut < 0 and (
                (end is None and len(tokens) >= sampling.max_tokens) or (sampling.stop_loops and looping(tokens))
            )
            results.append(Completion(text[:cut] if cut >= 0 else text, "length" if truncated else "stop", len(tokens)))
        return results

    def generate(
        self, prompts: list, sampling: Sampling, prompt_format: str, adapter: str | None = None
    ) -> list[Completion]:
        texts = [render(p, prompt_format, self.tokenizer) for p in prompts]
        return [
            c
            for i in range(0, len(texts), self.batch_size)
            for c in self._run(
                texts[i : i + self.batch_size], prompts[i : i + self.batch_size], sampling, prompt_format, adapter
            )
        ]

    def close(self) -> None:
        del self.model
