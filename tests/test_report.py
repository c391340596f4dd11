"""`selfspec inspect RUN --report`: the HTML data report, its figures and its heuristics."""

import json

import pytest

from selfspec_plugin import report
from selfspec_plugin.cli import main
from selfspec_plugin.runner import generate

from test_pipeline import job, model_dir, scripted  # noqa: F401  (fixtures)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("instruction, kind", [
    ("Extract all gene names mentioned in the abstract.", "information extraction"),
    ("Classify the sentiment of the review as positive or negative.", "classification"),
    ("Summarize the findings of the trial in one sentence.", "summarization"),
    ("Describe the relationship between BRCA1 and breast cancer.", "relation extraction"),
    ("What is the mechanism of action of metformin?", "question answering"),
    ("Explain how statins lower cholesterol.", "explanation"),
    ("Write a discharge note for the patient.", "generation"),
    ("Calculate the body mass index of the patient.", "reasoning"),
    ("Translate the sentence into plain language.", "rewriting"),
    ("Bananas are yellow.", "other"),
])
def test_task_type_heuristic(instruction, kind):
    assert report.task_type(instruction) == kind


@pytest.mark.parametrize("instruction, pair", [
    ("Identify the genes in the following passage.", ("identify", "genes")),
    ("List all possible side effects of the drug.", ("list", "side")),
    ("Give a relevant example of an enzyme.", ("give", "example")),
    ("What is the dose?", None),                      # a question: no imperative verb
    ("Explain.", None),                               # no object
])
def test_verb_noun_heuristic(instruction, pair):
    assert report.verb_noun(instruction) == pair


def test_inspect_report_writes_a_self_contained_page_with_figures(scripted, model_dir, tmp_path, capsys):  # noqa: F811
    run_dir = generate(job(model_dir, tmp_path), progress=False)
    data = run_dir / "data.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[0]["instruction"] = "Summarize <script>alert(1)</script> the trial."  # model output is data, not markup
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    assert main(["inspect", str(run_dir), "--report", "--samples", "10"]) == 0
    page = run_dir / "report" / "report.html"
    assert str(page) in capsys.readouterr().out
    for name in ("funnel.png", "task-types.png", "lengths.png", "verbs.png"):
        assert (run_dir / "report" / name).read_bytes()[:8] == PNG
    html = page.read_text()
    assert html.count('src="data:image/png;base64,') == 4  # figures embedded: the page stands alone
    assert "instructions   10 kept of 10 requested" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    stats = report.report_stats(json.loads((run_dir / "manifest.json").read_text()), rows)
    assert sum(n for _, n in stats["types"]) == len(rows) == 10
    assert stats["rejected"] == [("truncated", 12)]
