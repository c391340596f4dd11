"""What every backend shares: sampling settings, per-item seeds, completions and prompt rendering."""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

from ..errors import SelfSpecError


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int
    seed: int  # the run seed; each request gets item_seed(seed, prompt.id)
    # end a request whose output has begun to repeat itself (loops.looping) and report it as cut at max_tokens;
    # honoured by the backends that declare `stops_loops`
    stop_loops: bool = False
    # sample temperature/top-p from the top of the distribution (backends/nucleus.py); honoured by the backends that
    # declare `samples_top_p`
    fast_top_p: bool = False


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop", "length", or "abort" (stopped unfinished: Backend.stops_early)
    tokens: int


def item_seed(run_seed: int, item_id: str) -> int:
    """A request's sampling seed: stable across runs, processes and machines."""
    digest = hashlib.sha256(f"{run_seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def render(prompt, prompt_format: str, tokenizer) -> str:
    """Completion prompts: the plain text. Chat prompts: the chat template, then the assistant prefix."""
    if prompt_format == "completion":
        return prompt.text
    chat = tokenizer.apply_chat_template(list(prompt.messages), tokenize=False, add_generation_prompt=True)
    return chat + prompt.prefix


def prompt_lengths(tokenizer, prompts: list, prompt_format: str) -> list[int]:
    """Each prompt's length in tokens as the backend will send it (rendered, special tokens included)."""
    texts = [render(p, prompt_format, tokenizer) for p in prompts]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=(prompt_format == "completion"))["input_ids"]]


def chat_model(tokenizer, model_dir: str | None = None) -> bool:
    """Is this a chat/instruct model, not merely a model whose tokenizer carries a chat template? A base model
    often ships its family's template (Llama-3.1-8B and Qwen2.5-7B do), but it was never trained to
    end a turn: its end-of-sequence token is a document end (`<|end_of_text|>`, `<|endoftext|>`), while the
    template ends an assistant turn with another token (`<|eot_id|>`, `<|im_end|>`). So: a chat model is one
    whose template ends an assistant turn with one of the tokens the model stops on (the tokenizer's eos
    token and generation_config.json's `eos_token_id`s)."""
    if not getattr(tokenizer, "chat_template", None):
        return False
    probe = "selfspec-probe-answer"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": probe}], tokenize=False
        )
    except Exception:  # a template that cannot render a plain user/assistant exchange is no chat template
        return False
    after = text[text.rfind(probe) + len(probe) :].lstrip()
    return any(end and after.startswith(end) for end in stop_tokens(tokenizer, model_dir))


def stop_tokens(tokenizer, model_dir: str | None) -> set[str]:
    """The tokens generation stops on: the tokenizer's eos token and a local generation_config.json's ids."""
    ids = []
    config = Path(model_dir) / "generation_config.json" if model_dir else None
    if config is not None and config.is_file():
        found = json.loads(config.read_text()).get("eos_token_id")
        ids = found if isinstance(found, list) else [found] if found is not None else []
    return {tokenizer.eos_token, *tokenizer.convert_ids_to_tokens(ids)} - {None}


def adapter_rank(adapter: str | Path) -> int:
    """The LoRA rank of a PEFT adapter directory."""
    try:
        return int(json.loads((Path(adapter) / "adapter_config.json").read_text())["r"])
    except (OSError, ValueError, KeyError) as exc:
        raise SelfSpecError(f"{adapter}: not a PEFT LoRA adapter directory ({exc})") from None


class Backend(abc.ABC):
    """What a generation backend is. A factory registered through `register_backends` is called
    `factory(model, options)`; subclassing this class is the way to declare what a backend can do (the class
    attributes below, each with its default). A third-party backend that does not subclass keeps working: every
    reader goes through `ability`, which falls back to these same defaults."""

    name: ClassVar[str] = ""  # as recorded in the manifest (default: the class's name)
    serves_adapters: ClassVar[bool] = False  # generate() takes `adapter=DIR` and applies that LoRA adapter per request
    # that path is several times slower than plain weights without CUDA: `eval.merge: auto` merges adapters there
    slow_adapters_on_cpu: ClassVar[bool] = False
    constrains_decoding: ClassVar[bool] = False  # a prompt's `pattern` (a regular expression) constrains its output
    # `Sampling.stop_loops` ends a looping request early (loops.looping); its Completion is then reported as cut at
    # the cap (finish_reason "length")
    stops_loops: ClassVar[bool] = False
    samples_top_p: ClassVar[bool] = False  # `Sampling.fast_top_p` draws sampled tokens with backends/nucleus.py
    # generate() takes `enough=`: a function of the completions finished so far ({position: Completion}), asked as
    # they finish; once it says True the others are stopped and come back with finish_reason "abort" (their text
    # and tokens so far)
    stops_early: ClassVar[bool] = False
    # generate() takes `window=n`: at most n requests decode at once, the next ones (in order) taking the places of
    # those that finish, so that a call of several brainstorming rounds runs as one stream (`rounds_per_call`)
    refills: ClassVar[bool] = False
    remote_model: ClassVar[bool] = False  # the model is a name on a server, not a local directory to fingerprint
    requires: ClassVar[dict] = {}  # {module: install hint}, checked before any work starts
    # Its options: a pydantic model (extra keys are errors), the `selfspec:` key they are read from, and those of
    # them that change how fast or where, not what is generated (left out of the run key: the one mechanism).
    Options: ClassVar[Optional[type]] = None
    options_key: ClassVar[str] = "backend_options"
    not_output: ClassVar[frozenset] = frozenset()
    # Set by a started backend: its tokenizer has a chat template; the model was trained to chat (`chat_model`,
    # None: as chat_capable; `prompt_format: auto` reads it); its context in tokens (None: unknown).
    chat_capable: bool = False
    chat_model: Optional[bool] = None
    context_tokens: Optional[int] = None
    prompt_tokens = None  # optional method (prompts, prompt_format) -> lengths: with context_tokens, over-long
    # prompts are shortened by the pipeline instead of being left to the backend

    adapter_options = None  # optional (options, adapter dirs) -> the start options that serve those adapters
    settings = None  # optional (config) -> its options from the `selfspec:` block (default: read `options_key`)

    @abc.abstractmethod
    def generate(self, prompts: list, sampling: Sampling, prompt_format: str, adapter=None) -> list[Completion]:
        """One completion per prompt, in order."""

    @abc.abstractmethod
    def close(self) -> None:
        """Free the engine (and its GPU memory)."""


def ability(backend, name: str):
    """A backend's (or factory's) declared ability `name`, or Backend's default when it declares none."""
    return getattr(backend, name, getattr(Backend, name))


def serves_adapters(factory) -> bool:
    return bool(ability(factory, "serves_adapters"))


def is_chat_model(backend) -> bool:
    """`prompt_format: auto`'s question: was the backend's model trained to chat (default: it has a chat template)."""
    found = ability(backend, "chat_model")
    return bool(ability(backend, "chat_capable") if found is None else found)


def require_adapters(name: str, factory) -> None:
    if not serves_adapters(factory):
        raise SelfSpecError(
            f"selfspec.backend: {name!r} cannot apply a LoRA adapter per request (it does not declare "
            "`serves_adapters`); use a backend that does, e.g. vllm or transformers"
        )


def output_options(factory, options: dict) -> dict:
    """The options that shape what `factory` generates (its declared `not_output` left out)."""
    fast = ability(factory, "not_output")
    return {k: v for k, v in options.items() if k not in fast}


def validated(factory, key: str, values: dict) -> dict:
    """`values` (the `selfspec.<key>:` block) through the factory's options model, every field dumped; a bad key or
    value is a SelfSpecError naming `selfspec.<key>.<field>` (no model: as given)."""
    model = ability(factory, "Options")
    if model is None:
        return dict(values)
    from pydantic import ValidationError

    try:
        return model(**values).model_dump()
    except ValidationError as exc:
        raise SelfSpecError(
            "; ".join(f"selfspec.{key}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None


def start_options(name: str, factory, options: dict, adapters: list[str]) -> dict:
    """The options `factory` starts with to serve `adapters` per request; a backend that declares no adapter
    support is an error naming it."""
    if not adapters:
        return options
    require_adapters(name, factory)
    hook = ability(factory, "adapter_options")
    return hook(options, adapters) if hook else options


def vllm_lora_options(options: dict, adapters: list[str]) -> dict:
    """vLLM enables LoRA when it starts: one adapter per engine call, so one slot; the rank is the largest one."""
    return {**options, "enable_lora": True, "max_lora_rank": max(8, *map(adapter_rank, adapters)), "max_loras": 1}


def backend_options(name: str, factory, config) -> dict:
    """A backend's options from the `selfspec:` block (its `settings`, else its `options_key` block validated against
    its `Options`: errors name `selfspec.<key>.<field>`), plus `trust_remote_code`."""
    hook = ability(factory, "settings")
    if hook is not None:
        options = hook(config)
    else:
        key = ability(factory, "options_key")
        given = getattr(config, key)
        try:
            options = validated(factory, key, given)
        except SelfSpecError as exc:
            raise SelfSpecError(f"backend {name!r}: {exc}") from None
        if key == "backend_options" and ability(factory, "Options") is not None:  # only what the user set
            options = {k: v for k, v in options.items() if k in given}
    return {**options, "trust_remote_code": config.trust_remote_code}
