"""A tiny Llama built on the fly for the tests: no download, ~0.5 M parameters, head_dim 64 (vLLM's CPU
attention needs >= 32). Its byte-level BPE tokenizer is trained offline, and the model is trained for a
few hundred steps on prompts rendered by `selfspec_plugin.prompts` from the seed file, so that it emits
the numbered `Instruction:/Input:` lists and short responses the pipeline parses. Its output is noisy
text, so tests assert on structure (files, counts, parsing), never on content.

`tiny_chat_model_dir()` is the same model with a chat template whose assistant turns end with its eos token
`</s>` (a chat model, as `backends.chat_model` decides), trained on both renderings of the prompts.

The result is cached under .cache/test-models/<hash of this file, prompts.py and the seeds>.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "tests" / "data" / "seeds.jsonl"  # 12 short biomedical seeds: quick to train on
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
STEPS = 300
# Assistant turns end with the eos token: a chat model. (A base model's template would end them otherwise.)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def chat(messages, answer: str = "", prefix: str = "") -> str:
    """CHAT_TEMPLATE rendered in Python (for the training texts): the conversation, then the assistant's turn."""
    turns = "".join(f"<|{m['role']}|>\n{m['content']}</s>\n" for m in messages)
    return f"{turns}<|assistant|>\n{prefix}{answer}"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in (Path(__file__), ROOT / "selfspec_plugin" / "prompts.py", SEEDS):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _babble(words: list[str], rng: random.Random, lo: int, hi: int) -> str:
    """Random words from the seeds' vocabulary: novel content in the right format."""
    return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi))).capitalize() + "."


def training_texts(seeds: list[dict], n: int, rng: random.Random) -> list[str]:
    """Brainstorm prompts continued by 2 babbled items, and response prompts answered by a seed output, each in
    the completion rendering and (every other pair) the chat rendering."""
    from selfspec_plugin.prompts import brainstorm_prompt, response_prompt

    words = sorted(
        {w.strip(".,:;?()").lower() for s in seeds for w in (s["instruction"] + " " + s["input"]).split()} - {""}
    )
    texts = []
    for i in range(n):
        as_chat = i % 4 >= 2
        if i % 2 == 0:
            prompt = brainstorm_prompt(f"t{i}", rng.sample(seeds, 3), "biomedicine")
            items = []
            for num in (4, 5):
                head = "" if num == 4 else f"###\n{num}. Instruction:"
                items.append(f"{head} {_babble(words, rng, 6, 14)}\n{num}. Input:\n{_babble(words, rng, 8, 20)}\n")
            answer = "".join(items)
            texts.append(chat(prompt.messages, answer, prompt.prefix) if as_chat else prompt.text + answer)
        else:
            target = rng.choice(seeds)
            prompt = response_prompt(f"t{i}", target, rng.sample(seeds, 5), "biomedicine")
            texts.append(chat(prompt.messages, target["output"]) if as_chat else prompt.text + target["output"])
    return texts


def build(out: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from selfspec_plugin.seeds import load_seeds

    seeds = load_seeds(SEEDS)
    rng = random.Random(0)
    texts = training_texts(seeds, 600, rng)

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=1024, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    ids = [tokenizer(t)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(STEPS):
        batch = [ids[(step * 4 + j) % len(ids)] for j in range(4)]
        width = max(map(len, batch))
        x = torch.tensor([b + [3] * (width - len(b)) for b in batch])
        labels = torch.tensor([b + [-100] * (width - len(b)) for b in batch])
        loss = model(input_ids=x, attention_mask=(labels != -100).long(), labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    tmp = _scratch(out)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "final_loss.txt").write_text(f"{loss.item():.4f}\n")
    return _publish(tmp, out)


def _scratch(out: Path) -> Path:
    """A private folder beside `out` to build in: two test sessions may build the same model at once."""
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))


def _publish(tmp: Path, out: Path) -> Path:
    try:
        tmp.rename(out)
    except OSError:  # the other session finished first: the same model (same fingerprint), keep theirs
        if not out.is_dir():
            raise
        shutil.rmtree(tmp)
    return out


def tiny_model_dir(cache: Path = ROOT / ".cache" / "test-models") -> Path:
    out = cache / f"tiny-llama-{_fingerprint()}"
    if not (out / "config.json").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        build(out)
    return out


def tiny_chat_model_dir(cache: Path = ROOT / ".cache" / "test-models") -> Path:
    """The tiny model with CHAT_TEMPLATE in its tokenizer config: a chat model."""
    import json

    out = cache / f"tiny-chat-{_fingerprint()}"
    if not (out / "config.json").is_file():
        base = tiny_model_dir(cache)
        tmp = _scratch(out)
        shutil.copytree(base, tmp, dirs_exist_ok=True)
        config = json.loads((tmp / "tokenizer_config.json").read_text())
        (tmp / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": CHAT_TEMPLATE}, indent=2))
        _publish(tmp, out)
    return out


if __name__ == "__main__":
    print(tiny_model_dir())


def random_lora(model_dir: Path, out: Path, modules: list[str], seed: int = 0, rank: int = 8) -> Path:
    """A LoRA adapter of `model_dir` with random (not zero) B matrices, saved in `out`: it visibly changes the
    model's outputs. Alpha is twice the rank."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, init_lora_weights=False, task_type="CAUSAL_LM", target_modules=modules
    )
    get_peft_model(model, config).save_pretrained(out)
    return out
