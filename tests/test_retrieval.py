import json

import pytest

from selfspec_plugin import registry
from selfspec_plugin.errors import SelfSpecError
from selfspec_plugin.prompts import response_prompt
from selfspec_plugin.retrieval import load_corpus

DOCS = [
    {"id": "statin", "text": "Statins inhibit HMG-CoA reductase, lowering LDL cholesterol synthesis in the liver."},
    {"id": "warfarin", "text": "Warfarin is a vitamin K antagonist; CYP2C9 inhibitors raise its anticoagulant effect."},
    {"id": "insulin", "text": "Insulin is secreted by pancreatic beta cells and promotes glucose uptake."},
    {"id": "p53", "text": "TP53 encodes p53, a tumour suppressor that triggers apoptosis after DNA damage."},
]


def test_load_corpus_formats(tmp_path):
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("\n".join(json.dumps({"id": d["id"], "title": "T", "text": d["text"]}) for d in DOCS))
    assert load_corpus(jsonl)[0] == {"id": "statin", "text": "T. " + DOCS[0]["text"]}
    txt = tmp_path / "c.txt"
    txt.write_text("first doc\n\nsecond doc\n")
    assert load_corpus(txt) == [{"id": "1", "text": "first doc"}, {"id": "3", "text": "second doc"}]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": [d["text"] for d in DOCS]}), tmp_path / "c.parquet")
    assert len(load_corpus(tmp_path / "c.parquet", text_field="body")) == 4


def test_corpus_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(SelfSpecError, match=r"bad.jsonl:2: missing string field 'text'"):
        load_corpus(bad)
    with pytest.raises(SelfSpecError, match="selfspec.corpus: file not found"):
        load_corpus(tmp_path / "none.jsonl")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(SelfSpecError, match="holds no documents"):
        load_corpus(tmp_path / "empty.txt")


def test_bm25_finds_the_relevant_document_and_caches_its_index(tmp_path):
    index = tmp_path / "index"
    retriever = registry.make_retriever("bm25", DOCS, index)
    queries = ["Which enzyme do statins inhibit?", "What does the tumour suppressor p53 do after DNA damage?"]
    hits = retriever.search(queries, 2)
    assert [h[0]["id"] for h in hits] == ["statin", "p53"]
    assert index.is_dir()
    import bm25s

    def no_indexing(*args, **kwargs):
        raise AssertionError("the index was built again instead of read from the cache")

    original, bm25s.BM25.index = bm25s.BM25.index, no_indexing
    try:
        again = registry.make_retriever("bm25", DOCS, index).search(queries, 2)
    finally:
        bm25s.BM25.index = original
    assert again == hits


def test_background_goes_before_the_task():
    demo = {"instruction": "Name it.", "input": "", "output": "x"}
    p = response_prompt(
        "i",
        {"instruction": "Which enzyme do statins inhibit?", "input": ""},
        [demo],
        "biomedicine",
        ("Statins inhibit HMG-CoA reductase.",),
    )
    assert "### Background:\n[1] Statins inhibit HMG-CoA reductase.\n\n### Instruction:\nWhich enzyme" in p.text
    assert p.messages[-1]["content"].startswith("### Background:\n[1] Statins")
    assert "Background" not in p.messages[1]["content"]


def test_bm25_over_real_pubmed_abstracts(tmp_path, bench):
    """593 public-domain PubMed abstracts (PubTator format, read in place) as a jsonl corpus."""
    docs: dict[str, dict] = {}
    for line in (bench / "ncbi-disease" / "NCBItrainset_corpus.txt").read_text().splitlines():
        parts = line.split("|", 2)
        if len(parts) == 3 and parts[1] in ("t", "a"):
            doc = docs.setdefault(parts[0], {"id": parts[0], "title": "", "text": ""})
            doc["title" if parts[1] == "t" else "text"] = parts[2]
    corpus = tmp_path / "pubmed.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in docs.values()))
    loaded = load_corpus(corpus)
    assert len(loaded) >= 590
    retriever = registry.make_retriever("bm25", loaded, tmp_path / "index")
    for query in (
        "adenomatous polyposis coli tumour suppressor",
        "Duchenne muscular dystrophy dystrophin",
        "myotonic dystrophy",
    ):
        top = retriever.search([query], 3)[0]
        assert len(top) == 3
        assert any(word in top[0]["text"].lower() for word in query.lower().split()[:2])
