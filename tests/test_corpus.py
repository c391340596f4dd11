"""A corpus of one's own documents (corpus.py): a folder of .md/.txt/.html/.pdf (and .jsonl) files read into
sections and chunks, bad files skipped with their reasons, ids and run keys that follow the text."""

import json

import pytest
from pdf_fixture import write_pdf
from test_pipeline import scripted  # noqa: F401  (the scripted backend, registered as a plugin)
from test_recipe_sharing import smoke_copy  # noqa: F401  (recipes/smoke-cpu.yml in a temp folder)

from selfspec_plugin import corpus
from selfspec_plugin.cli import main
from selfspec_plugin.errors import SelfSpecError
from selfspec_plugin.fileio import sha256_file
from selfspec_plugin.retrieval import load_corpus

NOTES = """# Lipids

Statins lower LDL cholesterol.

## Statins

Statins inhibit HMG-CoA reductase in the liver.

```
# a comment in a code block, not a heading
```

## Fibrates

Fibrates activate PPAR-alpha.
"""
PAGE = """<html><head><title>Anticoagulants</title><script>var tracking = 1;</script></head>
<body><nav>Home | About</nav><h1>Heparin</h1><p>Heparin activates <b>antithrombin</b>.</p>
<h2>Dosing</h2><p>Dose heparin by weight.</p><footer>(c) 2026</footer></body></html>"""


def one_of_each(folder):
    folder.mkdir(exist_ok=True)
    (folder / "notes.md").write_text(NOTES)
    (folder / "page.html").write_text(PAGE)
    (folder / "metformin.txt").write_text("Metformin lowers hepatic glucose output.\n")
    write_pdf(folder / "guide.pdf", ["Warfarin\nCYP2C9 inhibitors raise the INR.", "Insulin\nBeta cells secrete it."])
    (folder / "more").mkdir(exist_ok=True)
    (folder / "more" / "records.jsonl").write_text(json.dumps({"id": "p53", "text": "TP53 encodes p53."}) + "\n")
    return folder


def test_a_folder_of_each_format_gives_chunks_with_source_page_and_section(tmp_path):
    docs = load_corpus(one_of_each(tmp_path / "c"))
    by_source = {}
    for d in docs:
        by_source.setdefault(d["source"], []).append(d)
    assert sorted(by_source) == ["guide.pdf", "metformin.txt", "more/records.jsonl", "notes.md", "page.html"]
    assert [(d["page"], d["id"].split("-")[0]) for d in by_source["guide.pdf"]] == [
        (1, "guide.pdf#p1"),
        (2, "guide.pdf#p2"),
    ]
    assert "CYP2C9 inhibitors raise the INR." in by_source["guide.pdf"][0]["text"]
    # Markdown: one section per heading (a `#` line in a code block is not one), named by its heading path
    assert [d["section"] for d in by_source["notes.md"]] == ["Lipids", "Lipids > Statins", "Lipids > Fibrates"]
    statins = by_source["notes.md"][1]
    assert statins["id"].startswith("notes.md#lipids-statins-")
    assert NOTES[statins["start"] : statins["end"]] == statins["text"]  # offsets into the file's text
    # HTML: script, navigation and footer gone; headings make sections like Markdown's
    html = by_source["page.html"]
    assert [d["section"] for d in html] == ["Heparin", "Heparin > Dosing"]
    assert "antithrombin" in html[0]["text"] and not any("tracking" in d["text"] or "Home" in d["text"] for d in html)
    assert by_source["more/records.jsonl"][0]["id"] == "more/records.jsonl#p53"  # a record: whole, its own id
    assert len({d["id"] for d in docs}) == len(docs)
    assert load_corpus(tmp_path / "c") == docs  # a re-read gives the same ids


def test_a_glob_and_a_single_document_file(tmp_path):
    one_of_each(tmp_path / "c")
    docs = load_corpus(str(tmp_path / "c" / "**" / "*.md"))
    assert {d["source"] for d in docs} == {"notes.md"}
    assert {d["source"] for d in load_corpus(tmp_path / "c" / "guide.pdf")} == {"guide.pdf"}
    with pytest.raises(SelfSpecError, match=r"the pattern .*\*\.docx matches no file"):
        load_corpus(str(tmp_path / "c" / "*.docx"))


def test_a_single_record_file_reads_as_before(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": "word " * 400}) + "\n" for i in range(2)))
    assert [d["id"] for d in load_corpus(path)] == ["d0", "d1"]  # whole records, as before chunk_tokens
    assert corpus.corpus_digest(str(path)) == sha256_file(path)  # and the same run key
    cut = load_corpus(path, chunk_tokens=100, chunk_overlap=10)
    assert len(cut) > 2 and all(d["tokens"] <= 100 and d["record"] in ("d0", "d1") for d in cut)
    assert cut[0]["id"].startswith("d0-") and corpus.cited_sources([{"docs": [cut[0]["id"]]}]) == []


def test_bad_files_are_skipped_and_counted_with_their_reasons(tmp_path, monkeypatch):
    folder = one_of_each(tmp_path / "c")
    write_pdf(folder / "locked.pdf", ["secret"], password="pw")
    (folder / "broken.pdf").write_bytes((folder / "guide.pdf").read_bytes()[:200])
    (folder / "empty.md").write_text("  \n")
    (folder / "junk.txt").write_bytes(bytes(range(256)) * 8)
    (folder / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me\n".encode("latin-1"))
    limit = max(p.stat().st_size for p in folder.rglob("*")) + 1
    (folder / "huge.txt").write_text("word " * limit)
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n")
    (folder / ".hidden.md").write_text("not read")
    monkeypatch.setattr(corpus, "MAX_FILE_BYTES", limit)
    found = corpus.read_corpus(str(folder))
    skipped = dict(found.skipped)
    assert skipped["locked.pdf"].startswith("encrypted PDF that needs a password")
    assert skipped["broken.pdf"].startswith("not a readable PDF (")
    assert skipped["empty.md"] == "empty file"
    assert skipped["junk.txt"] == "binary data, not text (NUL bytes)"
    assert skipped["latin1.txt"] == "not UTF-8 text (byte 0xe9 on line 1): save it as UTF-8"
    assert skipped["huge.txt"].startswith("larger than ") and skipped["huge.txt"].endswith("MiB): split it")
    assert skipped["photo.png"].startswith("not a corpus file type (.png")
    assert ".hidden.md" not in skipped and len(found.files) == 5
    # an empty-password PDF (restrictions only) opens
    write_pdf(folder / "restricted.pdf", ["Open to all."], password="")
    assert "restricted.pdf" in corpus.read_corpus(str(folder)).files


def test_a_corpus_with_nothing_readable_is_an_error_that_lists_every_skip(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "empty.txt").write_text("")
    write_pdf(tmp_path / "c" / "locked.pdf", ["x"], password="pw")
    with pytest.raises(SelfSpecError, match=r"holds no documents \(skipped: empty.txt: empty file; locked.pdf: encr"):
        load_corpus(tmp_path / "c")
    (tmp_path / "c" / "bad.jsonl").write_text('{"text": "ok"}\n{"body": 1}\n')  # structured data: an error
    with pytest.raises(SelfSpecError, match=r"bad.jsonl:2: missing string field 'text'"):
        load_corpus(tmp_path / "c")


def test_utf16_text_with_its_mark_reads():
    assert corpus.decode_text("Caf\xe9\n".encode("utf-16")) == "Caf\xe9\n"


def test_windows_are_bounded_cut_at_sentences_and_overlap():
    text = " ".join(f"Sentence {i} has five words." for i in range(40))
    spans, unit = corpus.token_spans([text])
    cuts = corpus.windows(text, spans[0], 22, 6)
    assert unit == "words" and len(cuts) > 5
    assert cuts[0][0] == 0 and cuts[-1][1] == len(text)
    for (a, b), (c, _) in zip(cuts, cuts[1:]):
        assert len(text[a:b].split()) <= 22
        assert text[a:b].endswith(".")  # a sentence end in the window's second half
        assert c < b  # the next one repeats the end of this one
    assert corpus.windows("", [], 10, 2) == []


def test_chunks_count_the_generators_own_tokens(tiny_model, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    found = corpus.read_corpus(str(_long_notes_folder(tmp_path / "c")))
    chunks, unit = corpus.chunk(found, 48, 8, tokenizer)
    assert unit == "tokens" and len(chunks) > 3
    for c in chunks:
        assert len(tokenizer(c["text"], add_special_tokens=False)["input_ids"]) <= 48 + 2  # (merges at the edges)


def _long_notes_folder(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "long.md").write_text("# Long\n\n" + " ".join(f"The kinase {i} binds its receptor." for i in range(60)))
    return folder


def test_the_run_key_follows_the_extracted_text(tmp_path):
    folder = one_of_each(tmp_path / "c")
    before = corpus.corpus_digest(str(folder))
    write_pdf(folder / "guide.pdf", ["Warfarin\nCYP2C9 inhibitors raise the INR.", "Insulin\nBeta cells secrete it."])
    (folder / "photo.png").write_bytes(b"not read")  # a skipped file gives no text
    assert corpus.corpus_digest(str(folder)) == before  # the same text, written again
    (folder / "notes.md").write_text(NOTES.replace("PPAR-alpha", "PPAR-gamma"))
    assert corpus.corpus_digest(str(folder)) != before


def test_corpus_inspect_lists_files_chunks_and_skips(tmp_path, capsys):
    folder = one_of_each(tmp_path / "c")
    (folder / "empty.txt").write_text("")
    assert main(["corpus", "inspect", str(folder), "--chunk-tokens", "64", "--show", "1"]) == 0
    out = capsys.readouterr().out
    assert "5 file(s) read (.html, .jsonl, .md, .pdf, .txt), 1 skipped" in out
    assert "chunk(s) of <= 64 words" in out and "skipped empty.txt: empty file" in out
    assert "guide.pdf: 2 chunk(s)" in out and '"id": "guide.pdf#p1-' in out


def test_the_dataset_card_lists_the_cited_sources():
    data = [{"docs": ["guide.pdf#p1-aa", "guide.pdf#p2-bb", "notes.md#x-cc"]}, {"docs": ["guide.pdf#p1-aa"]}]
    assert corpus.cited_sources(data) == [("guide.pdf", 2), ("notes.md", 1)]
    assert corpus.cited_sources([{"docs": ["d1"]}]) == []


def test_a_generation_over_a_folder_cites_chunks_by_source_and_page(scripted, tmp_path, capsys):
    from test_pipeline import job

    from selfspec_plugin.runner import generate

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    folder = one_of_each(tmp_path / "c")
    (folder / "empty.txt").write_text("")
    # the scripted instructions say "Explain <made-up words>": the pages that say "explain" are what BM25 finds
    write_pdf(folder / "explain.pdf", ["Explain the first page.", "Explain the second page; explain it again."])
    settings = {"corpus": str(folder), "retrieval_k": 2, "num_instructions": 4}
    run_dir = generate(job(model_dir, tmp_path / "out", **settings), progress=False)
    data = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
    assert data and all(len(row["docs"]) == 2 for row in data)
    assert {d.split("-")[0] for row in data for d in row["docs"]} == {"explain.pdf#p1", "explain.pdf#p2"}
    ids = {d["id"] for d in load_corpus(folder)}
    assert all(d in ids for row in data for d in row["docs"])  # the ids a later read gives
    card = (run_dir / "README.md").read_text()
    assert f"the triplets citing each): `explain.pdf` ({len(data)})." in card
    assert "selfspec.corpus: skipped empty.txt: empty file" in capsys.readouterr().err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["inputs"]["corpus_sha256"] == corpus.corpus_digest(str(folder))


def test_a_folder_corpus_is_checked_packed_and_keeps_its_run_key(smoke_copy, tmp_path, monkeypatch, capsys):
    import tarfile

    import yaml
    from test_recipe_sharing import run_key

    one_of_each(smoke_copy.parent / "docs")
    (smoke_copy.parent / "docs" / "empty.txt").write_text("")
    raw = yaml.safe_load(smoke_copy.read_text())
    raw["selfspec"]["corpus"] = "docs"
    smoke_copy.write_text(yaml.safe_dump(raw, sort_keys=False))
    original = run_key(smoke_copy)
    assert main(["recipe", "check", str(smoke_copy)]) == 0
    out = capsys.readouterr().out
    assert "selfspec.corpus: docs -> " in out and "corpus: 5 file(s) read, 9 section(s), 1 skipped" in out
    assert "warn  corpus: skipped empty.txt: empty file" in out
    monkeypatch.chdir(tmp_path)
    assert main(["recipe", "pack", str(smoke_copy), "-o", "b.tar.gz"]) == 0
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        assert "corpus/docs/guide.pdf" in tar.getnames() and "corpus/docs/more/records.jsonl" in tar.getnames()
    assert main(["recipe", "unpack", "b.tar.gz", str(tmp_path / "two")]) == 0
    packed = yaml.safe_load((tmp_path / "two" / "recipe.yml").read_text())["selfspec"]
    assert packed["corpus"] == "corpus/docs" and packed["corpus_sha256"] == corpus.corpus_digest(
        str(smoke_copy.parent / "docs")
    )
    assert run_key(tmp_path / "two" / "recipe.yml") == original
    (tmp_path / "two" / "corpus" / "docs" / "notes.md").write_text("# Changed\n\nOther text.\n")
    assert main(["recipe", "check", str(tmp_path / "two" / "recipe.yml")]) == 2
    assert "has changed since the recipe pinned it" in capsys.readouterr().out
