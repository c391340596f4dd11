"""OpenAI-compatible HTTP backend (`vllm serve`, or any endpoint speaking /v1/completions and
/v1/chat/completions): concurrent requests, retries with exponential backoff, timeouts. stdlib only.

options: base_url (required, e.g. http://127.0.0.1:8000/v1), model (served name; default: the job's
model), api_key (default: $OPENAI_API_KEY), concurrency (16), timeout (s, 120), max_retries (5),
chat (whether to use the chat endpoint; default true: the server applies the model's template).
With chat prompts an assistant prefix is sent as a final assistant message that the server continues
(vLLM's `continue_final_message`).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from ..errors import SelfSpecError
from .base import Backend, Completion, Sampling, item_seed

RETRYABLE = {408, 409, 429, 500, 502, 503, 504}


class OpenAIBackend(Backend):
    name = "openai"
    not_output = frozenset({"api_key", "base_url", "concurrency", "timeout", "max_retries", "backoff"})
    remote_model = True  # the model is a name the server knows, not a local directory (no files to fingerprint)
    serves_adapters = True  # as vLLM's server does: `--enable-lora --lora-modules NAME=DIR` serves DIR as model NAME

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        base_url: Optional[str] = Field(None, description="The server's /v1 URL (required)")
        model: Optional[str] = Field(None, description="The served model's name; default: the recipe's model")
        api_key: Optional[str] = Field(None, description="default: $OPENAI_API_KEY")
        concurrency: int = Field(16, gt=0)
        timeout: float = Field(120, gt=0)
        max_retries: int = Field(5, ge=0)
        backoff: float = Field(1.0, ge=0)
        chat: bool = Field(True, description="The served model is a chat model")
        adapters: dict[str, str] = Field(
            default_factory=dict,
            description="LoRA adapter directory -> the model name "
            "the server serves it under (default: the directory's name)",
        )

    def __init__(self, model: str, options: dict):
        o = self.Options(**{k: v for k, v in options.items() if k != "trust_remote_code"})  # the defaults live there
        if not o.base_url:
            raise SelfSpecError("selfspec.backend_options.base_url: required by the openai backend")
        self.base_url = o.base_url.rstrip("/")
        self.model = o.model or model
        self.api_key = o.api_key or os.environ.get("OPENAI_API_KEY", "EMPTY")
        self.concurrency, self.timeout, self.max_retries, self.backoff = (
            o.concurrency,
            o.timeout,
            o.max_retries,
            o.backoff,
        )
        self.chat_capable = self.chat_model = o.chat  # a served model: the user says
        self.adapter_names = {str(Path(k).resolve()): v for k, v in o.adapters.items()}
        self.served: set[str] = set()

    def _served_name(self, adapter: str) -> str:
        """The model name the server serves `adapter` under, checked once against its /v1/models."""
        name = self.adapter_names.get(str(Path(adapter).resolve()), Path(adapter).resolve().name)
        if name not in self.served:
            self.served = {m["id"] for m in self._request("/models")["data"]}
            if name not in self.served:
                raise SelfSpecError(
                    f"{self.base_url}: the server does not serve the LoRA adapter {adapter} as {name!r} (it serves: "
                    f"{', '.join(sorted(self.served))}). Start it with `vllm serve MODEL --enable-lora --lora-modules "
                    f"{name}={adapter}`, or map the folder to its served name in selfspec.backend_options.adapters"
                )
        return name

    def _request(self, path: str, body: dict | None = None) -> dict:
        """GET (no body) or POST a JSON body, retrying what a busy server answers."""
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
        )
        last = None
        for attempt in range(self.max_retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRYABLE:
                    raise SelfSpecError(f"{self.base_url}{path}: HTTP {exc.code}: {exc.read()[:500]!r}") from None
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = str(getattr(exc, "reason", exc))
            if attempt < self.max_retries:
                time.sleep(self.backoff * 2**attempt)
        raise SelfSpecError(
            f"backend server unreachable: {self.base_url}{path} failed {self.max_retries + 1} times "
            f"(last error: {last})"
        )

    def _one(self, prompt, sampling: Sampling, prompt_format: str, model: str) -> Completion:
        body = {
            "model": model,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p if sampling.temperature > 0 else 1.0,
            "seed": item_seed(sampling.seed, prompt.id),
        }
        if prompt.stop:
            body["stop"] = list(prompt.stop)
        if prompt_format == "chat":
            messages = list(prompt.messages)
            if prompt.prefix:
                messages.append({"role": "assistant", "content": prompt.prefix})
                body.update(continue_final_message=True, add_generation_prompt=False)
            response = self._request("/chat/completions", {**body, "messages": messages})
            choice = response["choices"][0]
            text = choice["message"]["content"] or ""
        else:
            response = self._request("/completions", {**body, "prompt": prompt.text})
            choice = response["choices"][0]
            text = choice["text"]
        tokens = (response.get("usage") or {}).get("completion_tokens") or 0
        return Completion(text, "length" if choice.get("finish_reason") == "length" else "stop", int(tokens))

    def generate(
        self, prompts: list, sampling: Sampling, prompt_format: str, adapter: str | None = None
    ) -> list[Completion]:
        """`adapter`: a LoRA adapter directory the server serves under its own model name (see `_served_name`)."""
        model = self._served_name(adapter) if adapter else self.model
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda p: self._one(p, sampling, prompt_format, model), prompts))

    def close(self) -> None:
        pass
