"""A SentencePiece BPE tokenizer rebuilt from a GGUF file's metadata (`tokenizer.ggml.*`).

transformers 5.16's GGUF loader builds a wrong tokenizer for Gemma-3 GGUFs (a Unigram model over the vocabulary:
single-character ids, no `<bos>`), so the Gemma demo model gets its tokenizer from here instead. What it rebuilds
is what SentencePiece does with the model the GGUF was converted from (tests/test_gemma.py checks the ids against
SentencePiece itself on every shipped seed and corpus line):
- the text is not normalised except spaces -> `▁` (no dummy prefix, no whitespace clean-up);
- user-defined pieces (`\\n`, runs of spaces, HTML tags) are cut out first, longest match, and never merged;
- BPE then joins, again and again, the adjacent pair whose concatenation is the best-scored piece;
- what is left unknown falls back to `<0xNN>` byte pieces;
- `<bos>` is prepended (as the GGUF's tokenizer.ggml.add_bos_token says).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import SelfSpecError

# sentencepiece_model.proto's piece types; GGUF's tokenizer.ggml.token_type uses the same numbers.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPACE = "▁"


@dataclass(frozen=True)
class SpmVocab:
    pieces: list[str]
    scores: list[float]
    types: list[int]
    bos: int
    eos: int
    pad: int
    unk: int
    add_bos: bool = True


def read_vocab(gguf: Path) -> SpmVocab:
    """The SentencePiece vocabulary in a GGUF file; refuses what this module does not rebuild."""
    from gguf import GGUFReader

    fields = GGUFReader(gguf).fields

    def value(key: str):
        if key not in fields:
            raise SelfSpecError(f"{gguf}: no {key} in the GGUF metadata")
        return fields[key].contents()

    if value("tokenizer.ggml.model") != "llama":  # llama.cpp's name for a SentencePiece vocabulary
        raise SelfSpecError(f"{gguf}: tokenizer.ggml.model is {value('tokenizer.ggml.model')!r}, not SentencePiece")
    if fields.get("tokenizer.ggml.add_space_prefix") is None or value("tokenizer.ggml.add_space_prefix"):
        raise SelfSpecError(f"{gguf}: only a vocabulary without SentencePiece's dummy prefix is rebuilt")
    # llama.cpp's converter writes user-defined pieces with spaces where SentencePiece has `▁` ("▁▁" -> "  ").
    pieces = [piece.replace(" ", SPACE) for piece in value("tokenizer.ggml.tokens")]
    if len(set(pieces)) != len(pieces):
        raise SelfSpecError(f"{gguf}: tokenizer.ggml.tokens holds the same piece twice")
    types = [int(t) for t in value("tokenizer.ggml.token_type")]
    unk = int(value("tokenizer.ggml.unknown_token_id"))
    types[unk] = UNKNOWN  # the converter marks Gemma's <unk> as a control piece; SentencePiece needs one UNKNOWN
    return SpmVocab(
        pieces=pieces,
        scores=[float(s) for s in value("tokenizer.ggml.scores")],
        types=types,
        bos=int(value("tokenizer.ggml.bos_token_id")),
        eos=int(value("tokenizer.ggml.eos_token_id")),
        pad=int(value("tokenizer.ggml.padding_token_id")),
        unk=unk,
        add_bos=bool(value("tokenizer.ggml.add_bos_token")),
    )


def bpe_merges(vocab: SpmVocab) -> list[tuple[str, str]]:
    """SentencePiece merges two symbols when their concatenation is a normal piece, best score first; as `tokenizers`
    merges: every split of a normal piece into two normal pieces, ranked by the whole piece's score. Ties (two
    splits of the same piece) cannot both apply at one place, so their order does not matter."""
    normal = {p for p, t in zip(vocab.pieces, vocab.types) if t == NORMAL}
    ranked = sorted((i for i, t in enumerate(vocab.types) if t == NORMAL), key=lambda i: -vocab.scores[i])
    merges = []
    for i in ranked:
        piece = vocab.pieces[i]
        merges.extend(
            (piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in normal and piece[k:] in normal
        )
    return merges


def build_tokenizer(vocab: SpmVocab):
    """A `tokenizers.Tokenizer` that encodes as SentencePiece does (see the module's docstring)."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE

    ids = {piece: i for i, piece in enumerate(vocab.pieces)}
    model = BPE(vocab=ids, merges=bpe_merges(vocab), unk_token=vocab.pieces[vocab.unk], byte_fallback=True)
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Replace(" ", SPACE)
    tokenizer.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    # SentencePiece never reads control pieces from text; `tokenizers` does for special tokens, as every HF
    # tokenizer of this family does (<start_of_turn>, ...). Byte pieces stay plain vocabulary.
    kinds = {USER_DEFINED: False, CONTROL: True, UNKNOWN: True}
    tokenizer.add_special_tokens(
        [AddedToken(p, special=True, normalized=False) for p, t in zip(vocab.pieces, vocab.types) if kinds.get(t)]
    )
    tokenizer.add_tokens(
        [AddedToken(p, special=False, normalized=True) for p, t in zip(vocab.pieces, vocab.types) if t == USER_DEFINED]
    )
    if vocab.add_bos:
        bos = vocab.pieces[vocab.bos]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, vocab.bos)]
        )
    return tokenizer


def hf_tokenizer(gguf: Path):
    """The rebuilt tokenizer as a transformers tokenizer (no chat template: a base model's)."""
    from transformers import PreTrainedTokenizerFast

    vocab = read_vocab(gguf)
    name = vocab.pieces.__getitem__
    return PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(vocab),
        bos_token=name(vocab.bos),
        eos_token=name(vocab.eos),
        pad_token=name(vocab.pad),
        unk_token=name(vocab.unk),
        add_bos_token=vocab.add_bos,
        add_eos_token=False,
    )
