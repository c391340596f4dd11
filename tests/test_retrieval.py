import json

import pytest

from selfspec_plugin import plugins
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
    retriever = plugins.make_retriever("bm25", DOCS, index)
    queries = ["Which enzyme do statins inhibit?", "What does the tumour suppressor p53 do after DNA damage?"]
    hits = retriever.search(queries, 2)
    assert [h[0]["id"] for h in hits] == ["statin", "p53"]
    assert index.is_dir()
    again = plugins.make_retriever("bm25", DOCS, index).search(queries, 2)
    assert again == hits


def test_background_goes_before_the_task():
    demo = {"instruction": "Name it.", "input": "", "output": "x"}
    p = response_prompt("i", {"instruction": "Which enzyme do statins inhibit?", "input": ""}, [demo], "biomedicine",
                        ("Statins inhibit HMG-CoA reductase.",))
    assert "### Background:\n[1] Statins inhibit HMG-CoA reductase.\n\n### Instruction:\nWhich enzyme" in p.text
    assert p.messages[-1]["content"].startswith("### Background:\n[1] Statins")
    assert "Background" not in p.messages[1]["content"]
