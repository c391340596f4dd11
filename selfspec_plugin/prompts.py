"""Prompt templates (Self-Instruct/Alpaca family, as in Kang et al.) and the parser of brainstormed lists.

Every prompt is built in two renderings: `text` for base models (plain completion) and `messages` +
`prefix` for chat models (the chat template is applied by the backend, then `prefix` is appended so the
assistant's turn continues the list). Pure functions only.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

NO_INPUT = "<noinput>"

# The prompt format, the one vocabulary for generation, training and evaluation (docs/architecture.md): a base
# model is prompted in `completion` (plain text; it trains and is scored in the Alpaca template), a chat model in
# `chat` (its own chat template, in which it also trains and is scored).
FORMATS = ("completion", "chat")
# Words that files written by earlier versions (manifests, selfspec-trained.json, eval.json, recipes' eval.formats)
# use for the same two formats: Axolotl's dataset types and the eval's old name for `completion`.
OLD_FORMATS = {"alpaca": "completion", "chat_template": "chat"}


def prompt_format(word: str | None) -> str | None:
    """A format as any version wrote it, in this vocabulary (None and unknown words as they are)."""
    return OLD_FORMATS.get(word, word) if isinstance(word, str) else word


BRAINSTORM_HEADER = """You are asked to come up with a set of diverse task instructions about {domain}. These task instructions will be given to a language model and we will evaluate the language model for completing the instructions.

Here are the requirements:
1. Try not to repeat the verb for each instruction to maximize diversity.
2. The language used for the instruction also should be diverse. For example, you should combine questions with imperative instructions.
3. The type of tasks should be diverse: question answering, information extraction, entity recognition, relation extraction, classification, summarization, reasoning and so on, all about {domain}.
4. A language model should be able to complete the instruction. For example, do not ask the assistant to create any visual or audio output, and do not ask it to act in the outside world.
5. The instructions should be in English.
6. The instructions should be 1 to 2 sentences long. Either an imperative sentence or a question is permitted.
7. Generate an appropriate input for the instruction. The input should contain a specific, realistic and substantial example from {domain} (for example a passage, a question or a record), not a placeholder.
8. Not all instructions require input. In that case, simply put "{no_input}" in the input field.

List of tasks:"""

RESPONSE_HEADER = (
    "You are an expert in {domain}. Given an instruction and an input, write the best response that "
    "correctly completes the task. Follow the format of the examples."
)


BACKGROUND = "### Background:"


@dataclass(frozen=True)
class Prompt:
    """One generation request: its stable id, both renderings, and stop strings for completion mode."""

    id: str
    text: str
    messages: tuple[dict, ...]
    prefix: str = ""
    stop: tuple[str, ...] = field(default=())
    pattern: str = ""  # a regular expression the completion must match, where the backend can constrain decoding


def prompt_digest(prompt: Prompt) -> str:
    """What a prompt asks, hashed: a cached completion is reused only for the prompt it answered."""
    text = json.dumps([prompt.text, prompt.messages, prompt.prefix, prompt.stop, prompt.pattern], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def alpaca_prompt(instruction: str, inp: str) -> str:
    """The Alpaca training prompt as Axolotl's `type: alpaca` renders it (its system line, then the turn)."""
    if inp:
        return f"{ALPACA_WITH_INPUT}\n\n### Instruction:\n{instruction}\n\n### Input:\n{inp}\n\n### Response:\n"
    return f"{ALPACA_NO_INPUT}\n\n### Instruction:\n{instruction}\n\n### Response:\n"


ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)


def templates_hash() -> str:
    """Identity of the prompt templates (the brainstorming grammar's included): part of the run's cache key."""
    text = BRAINSTORM_HEADER + RESPONSE_HEADER + NO_INPUT + BACKGROUND + brainstorm_pattern(4, 2, 192)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _list_item(n: int, instruction: str, inp: str) -> str:
    return f"###\n{n}. Instruction: {instruction}\n{n}. Input:\n{inp or NO_INPUT}"


TOKENS_PER_WORD = 1.5  # English words in the BPE vocabularies of small models: ~1.3-1.5 tokens each


def brainstorm_pattern(first: int, items: int, max_tokens: int) -> str:
    """The numbered list a brainstorming completion must be, as a regular expression for constrained decoding:
    `items` items from number `first` (an instruction on one line that starts with a letter or digit, then its
    input or <noinput>), ending with the `###` that the stop strings cut. Lengths are bounded in words so that
    the items fit in `max_tokens`: an input that would run away is ended where the budget runs out, instead of
    being cut off by the token cap and dropped (`truncated`). Words, not characters: a long bound on characters is
    too slow for xgrammar to compile within vLLM's time limit (docs/benchmarks.md, B7 under the gates)."""
    budget = int(max_tokens / items / TOKENS_PER_WORD) - 4  # the markup of an item: ~6 tokens
    instruction = max(1, min(60, budget // 3))
    inp = max(1, budget - instruction - 2)  # (each field has one word before its bounded repetition)
    word, space = r"[^\s#]+", r"[ \t]+"
    items_re = [
        ("" if n == first else rf"\n###\n{n}\. Instruction:")
        + rf" [A-Za-z0-9][^\s#]*(?:{space}{word}){{1,{instruction}}}\n{n}\. Input:\n"
        + rf"(?:<noinput>|{word}(?:\s+{word}){{0,{inp}}})"
        for n in range(first, first + items)
    ]
    return "".join(items_re) + r"\n###"


def brainstorm_prompt(
    prompt_id: str, demos: list[dict], domain: str, items: int = 2, max_tokens: int | None = None
) -> Prompt:
    """The instruction-generation prompt: header, numbered seed demos, then the next number to fill in; its
    stop strings end the generation after `items` new items. With `max_tokens`, it also carries the grammar
    of the list it asks for (`brainstorm_pattern`), for backends that constrain decoding."""
    body = (
        BRAINSTORM_HEADER.format(domain=domain, no_input=NO_INPUT)
        + "\n"
        + "\n".join(_list_item(n, d["instruction"], d["input"]) for n, d in enumerate(demos, 1))
    )
    prefix = f"###\n{len(demos) + 1}. Instruction:"
    return Prompt(
        id=prompt_id,
        text=f"{body}\n{prefix}",
        messages=({"role": "user", "content": body},),
        prefix=prefix,
        stop=brainstorm_stop(len(demos) + 1, items),
        pattern=brainstorm_pattern(len(demos) + 1, items, max_tokens) if max_tokens else "",
    )


# A field marker: "4. Instruction:", "Instructions:", "### 5) Input:", "Output:" ... at the start of a line, or
# numbered anywhere after a space ("... text. 5. Input: ..."). Numbers are not checked (small models drift).
_MARK = re.compile(
    r"(?:^[ \t]*(?:#+[ \t]*)?(?:\d+[ \t]*[.)][ \t]*)?|(?<=\s)\d+[ \t]*[.)][ \t]*)"
    r"(?P<field>instructions?|inputs?|outputs?|responses?)[ \t]*:",
    re.I | re.M,
)
# `###` separators, and a dangling item number left where a stop string cut "5. Output:" to "5. " (or "##4. ")
_SEPARATOR = re.compile(r"^[ \t]*#{3,}[ \t]*$|[ \t]*#{3,}[ \t]*$|\n[ \t]*#*[ \t]*\d+[ \t]*[.)]?[ \t]*\Z", re.M)
NO_INPUT_WORDS = ("noinput", "no input", "none", "n/a", "")


def _field_text(text: str) -> str:
    return _SEPARATOR.sub("", text).strip()


def brainstorm_stop(first: int, items: int) -> tuple[str, ...]:
    """Stop strings that end a brainstorm generation once `items` items from number `first` are written: at the
    next item's instruction (numbering may drift by one; after a single item: at its separator or at any new
    instruction field, numbered or not), or when the model starts writing an output (the brainstorm asks for
    instructions and inputs only; what follows an output is rarely another clean item)."""
    if items == 1:  # any new instruction field ends the one item, whatever its number ("##4.", "5.", none)
        return ("###", "Instruction:", "Instructions:", "Output:")
    return (f"{first + items}. Instruction", f"{first + items + 1}. Instruction", "Output:")


def parse_brainstorm(prefix: str, completion: str, truncated: bool) -> list[dict]:
    """Parse the items of a brainstormed list (the prefix + completion) leniently.

    Items are found by their field markers, not by `###` separators: singular or plural field names, any or
    drifting numbers, missing separators. A stray `Output:`/`Response:` field ends an item's input and is
    ignored. An item with an instruction on one line and no `Input:` field (the model skipped `<noinput>`)
    has no input; one with several lines and no `Input:` field is unparseable. If the generation hit its
    token limit, only the item whose last field was cut off is dropped (`truncated`); earlier items are kept.
    Returns `{instruction, input}` dicts, or `{rejected: "unparseable"|"truncated", raw}` dicts.
    """
    text = prefix + completion
    marks = list(_MARK.finditer(text))
    if not marks:
        return [{"rejected": "unparseable", "raw": text.strip()}] if text.strip() else []
    items: list[dict] = []
    for n, mark in enumerate(marks):
        end = marks[n + 1].start() if n + 1 < len(marks) else len(text)
        field, body = mark["field"].lower().rstrip("s"), _field_text(text[mark.end() : end])
        own = field == "instruction" or (field == "input" and bool(items) and items[-1]["input"] is None)
        if field == "instruction":
            items.append({"instruction": body, "input": None, "start": mark.start()})
        elif own:
            items[-1]["input"] = body
        if items:  # a stray field (an output, a second input) belongs to the item but cannot cut it off
            items[-1]["end"] = end
            items[-1]["cut"] = truncated and own and end == len(text)
    return [_item(text, it) for it in items]


def _item(text: str, it: dict) -> dict:
    raw = text[it["start"] : it["end"]].strip()
    if it["cut"]:
        return {"rejected": "truncated", "raw": raw}
    instruction, inp = it["instruction"], it["input"]
    if not instruction or (inp is None and "\n" in instruction):
        return {"rejected": "unparseable", "raw": raw}
    inp = (inp or "").strip()
    if inp.strip("<> ").lower() in NO_INPUT_WORDS:
        inp = ""
    return {"instruction": " ".join(instruction.split()), "input": inp}


def _query(instruction: str, inp: str) -> str:
    return f"### Instruction:\n{instruction}\n\n### Input:\n{inp or NO_INPUT}\n\n### Response:\n"


def response_prompt(
    prompt_id: str, item: dict, demos: list[dict], domain: str, background: tuple[str, ...] = ()
) -> Prompt:
    """The response prompt: expert header, seed demos as solved examples, then the new task, preceded by
    retrieved background documents when there are any."""
    header = RESPONSE_HEADER.format(domain=domain)
    solved = [_query(d["instruction"], d["input"]) + d["output"] for d in demos]
    task = _query(item["instruction"], item["input"])
    if background:
        task = f"{BACKGROUND}\n" + "\n".join(f"[{n}] {doc}" for n, doc in enumerate(background, 1)) + "\n\n" + task
    text = "\n\n".join([header, *solved, task])
    messages: list[dict] = [{"role": "system", "content": header}]
    for d in demos:
        messages.append({"role": "user", "content": _query(d["instruction"], d["input"]).rstrip()})
        messages.append({"role": "assistant", "content": d["output"]})
    messages.append({"role": "user", "content": task.rstrip()})
    return Prompt(id=prompt_id, text=text, messages=tuple(messages), stop=("###",))


def as_messages(row: dict) -> list[dict]:
    """A triplet as the chat turns it trains on: the instruction (and input) from the user, the output from the assistant."""
    user = f"{row['instruction']}\n\n{row['input']}" if row["input"] else row["instruction"]
    return [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]
