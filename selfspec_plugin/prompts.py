"""Prompt templates (Self-Instruct/Alpaca family, as in Kang et al.) and the parser of brainstormed lists.

Every prompt is built in two renderings: `text` for base models (plain completion) and `messages` +
`prefix` for chat models (the chat template is applied by the backend, then `prefix` is appended so the
assistant's turn continues the list). Pure functions only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

NO_INPUT = "<noinput>"

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


def templates_hash() -> str:
    """Identity of the prompt templates: part of the run's cache key."""
    return hashlib.sha256((BRAINSTORM_HEADER + RESPONSE_HEADER + NO_INPUT + BACKGROUND).encode()).hexdigest()[:16]


def _list_item(n: int, instruction: str, inp: str) -> str:
    return f"###\n{n}. Instruction: {instruction}\n{n}. Input:\n{inp or NO_INPUT}"


def brainstorm_prompt(prompt_id: str, demos: list[dict], domain: str) -> Prompt:
    """The instruction-generation prompt: header, numbered seed demos, then the next number to fill in."""
    body = BRAINSTORM_HEADER.format(domain=domain, no_input=NO_INPUT) + "\n" + "\n".join(
        _list_item(n, d["instruction"], d["input"]) for n, d in enumerate(demos, 1)
    )
    prefix = f"###\n{len(demos) + 1}. Instruction:"
    return Prompt(
        id=prompt_id,
        text=f"{body}\n{prefix}",
        messages=({"role": "user", "content": body},),
        prefix=prefix,
    )


_FIELD = re.compile(r"\d+\s*\.\s*(Instruction|Input)\s*:")


def parse_brainstorm(prefix: str, completion: str, truncated: bool) -> list[dict]:
    """Parse `N. Instruction: ... / N. Input: ...` items from the prefix + completion (as Alpaca does).

    Returns `{instruction, input}` dicts, or `{rejected: "unparseable"|"truncated", raw}` for items that
    can't be used. When the generation hit its token limit the last item is cut off and is dropped.
    """
    blocks = [b for b in (prefix + completion).split("###") if b.strip()]
    items: list[dict] = []
    for i, block in enumerate(blocks):
        if truncated and i == len(blocks) - 1:
            items.append({"rejected": "truncated", "raw": block.strip()})
            continue
        parts = _FIELD.split(block)
        if len(parts) != 5 or parts[1] != "Instruction" or parts[3] != "Input" or parts[0].strip():
            items.append({"rejected": "unparseable", "raw": block.strip()})
            continue
        instruction = " ".join(parts[2].split())
        inp = parts[4].strip()
        if inp.strip("<> ").lower() in ("noinput", "no input", ""):
            inp = ""
        items.append({"instruction": instruction, "input": inp})
    return items


def _query(instruction: str, inp: str) -> str:
    return f"### Instruction:\n{instruction}\n\n### Input:\n{inp or NO_INPUT}\n\n### Response:\n"


def response_prompt(prompt_id: str, item: dict, demos: list[dict], domain: str, background: tuple[str, ...] = ()) -> Prompt:
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
