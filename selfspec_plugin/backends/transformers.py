"""Hugging Face transformers backend: the fallback where vLLM is not available (batched, left padding).

Greedy requests are generated in batches; sampled ones one at a time, each under its own seed, so a
regenerated item is identical whatever else is in its chunk.
"""

from __future__ import annotations

from .base import Completion, Sampling, item_seed, render


class TransformersBackend:
    name = "transformers"

    def __init__(self, model: str, options: dict):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = options.get("dtype") or ("bfloat16" if self.device == "cuda" else "float32")
        self.tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).to(self.device).eval()
        self.batch_size = int(options.get("batch_size", 16))
        self.chat_capable = bool(getattr(self.tokenizer, "chat_template", None))

    def _run(self, texts: list[str], prompts: list, sampling: Sampling, mode: str) -> list[Completion]:
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=(mode == "completion"))
        enc = enc.to(self.device)
        stop = sorted({s for p in prompts for s in p.stop})
        kwargs = {"do_sample": sampling.temperature > 0, "max_new_tokens": sampling.max_tokens,
                  "pad_token_id": self.tokenizer.pad_token_id}
        if sampling.temperature > 0:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
        if stop:
            kwargs.update(stop_strings=stop, tokenizer=self.tokenizer)
        with self.torch.no_grad():
            out = self.model.generate(**enc, **kwargs)
        configured = self.model.generation_config.eos_token_id
        ends = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id,
                *(configured if isinstance(configured, list) else [configured])} - {None}
        results = []
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            end = next((i for i, tok in enumerate(row) if tok in ends), None)  # finished rows are padded
            tokens = row if end is None else row[:end]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            cut = min((text.find(s) for s in stop if s in text), default=-1)
            truncated = end is None and cut < 0 and len(tokens) >= sampling.max_tokens
            results.append(Completion(text[:cut] if cut >= 0 else text, "length" if truncated else "stop", len(tokens)))
        return results

    def generate(self, prompts: list, sampling: Sampling, mode: str) -> list[Completion]:
        texts = [render(p, mode, self.tokenizer) for p in prompts]
        if sampling.temperature > 0:
            results = []
            for text, prompt in zip(texts, prompts):
                self.torch.manual_seed(item_seed(sampling.seed, prompt.id))
                results += self._run([text], [prompt], sampling, mode)
            return results
        return [c for i in range(0, len(texts), self.batch_size)
                for c in self._run(texts[i : i + self.batch_size], prompts[i : i + self.batch_size], sampling, mode)]

    def close(self) -> None:
        del self.model
