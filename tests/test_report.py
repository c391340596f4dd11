"""`selfspec inspect RUN --report`: the HTML data report, its figures and its heuristics."""

import json

import pytest
from conftest import ROOT
from test_pipeline import job, model_dir, scripted  # noqa: F401  (fixtures)

from selfspec_plugin import filters, funnel, report
from selfspec_plugin.cli import main
from selfspec_plugin.runner import generate

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "instruction, kind",
    [
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
    ],
)
def test_task_type_heuristic(instruction, kind):
    assert report.task_type(instruction) == kind


@pytest.mark.parametrize(
    "instruction, pair",
    [
        ("Identify the genes in the following passage.", ("identify", "genes")),
        ("List all possible side effects of the drug.", ("list", "side")),
        ("Give a relevant example of an enzyme.", ("give", "example")),
        ("What is the dose?", None),  # a question: no imperative verb
        ("Explain.", None),  # no object
    ],
)
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
    for name in ("funnel.png", "task-types.png", "lengths.png", "verbs.png", "labels.png"):
        assert (run_dir / "report" / name).read_bytes()[:8] == PNG
    html = page.read_text()
    assert html.count('src="data:image/png;base64,') == 5  # figures embedded: the page stands alone
    assert "instructions   11 kept of 10 requested" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    stats = report.report_stats(json.loads((run_dir / "manifest.json").read_text()), rows)
    assert sum(n for _, n in stats["types"]) == len(rows) == 10
    assert stats["rejected"] == [("truncated", 11), ("over_quota", 1)]


def test_label_shares_show_a_collapse_to_one_answer(scripted, model_dir, tmp_path, capsys):  # noqa: F811
    run_dir = generate(job(model_dir, tmp_path), progress=False)
    data = run_dir / "data.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    for row, answer in zip(rows, ["No.", "no", "No", "NO!", "no", "no", "Yes", "yes.", "cystic fibrosis"]):
        row["output"] = answer  # 9 short outputs, the 10th a sentence
    rows[9]["output"] = "A sentence that is far too long to be a label."
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    shares = funnel.label_shares(rows)
    assert shares["short"] == 9 and shares["total"] == 10
    assert shares["labels"] == [("no", 6, 0.667), ("yes", 2, 0.222), ("cystic fibrosis", 1, 0.111)]

    assert main(["inspect", str(run_dir)]) == 0
    shown = capsys.readouterr().out
    assert "short outputs (<= 3 words): 9 of 10 triplets" in shown
    assert "no                                  6   66.7%" in shown
    assert main(["inspect", str(run_dir), "--report"]) == 0
    html = (run_dir / "report" / "report.html").read_text()
    assert "<h2>Label balance</h2>" in html and "<tr><td>no</td><td>6</td><td>66.7%</td></tr>" in html


def test_drift_scores_instructions_against_the_seed_vocabulary():
    seeds = ["Name the gene mutated in cystic fibrosis.", "Classify the abstract by study design: trial or cohort."]
    data = [
        {"id": "a", "instruction": "Name the protein encoded by the cystic fibrosis gene.", "input": ""},
        {"id": "b", "instruction": "Recommend toppings for a bagel.", "input": "Breakfast menu"},
        {"id": "c", "instruction": "Classify this trial design.", "input": "A randomized cohort study"},
    ]
    d = filters.drift(data, seeds, threshold=0.3)
    assert d["lowest"] == ["b", "a", "c"] and d["below"] == 1 and d["scored"] == 3
    assert d["median"] == 0.667  # "a": 4 of its 6 content words (not "protein", "encoded") are the seeds'
    assert filters.drift(data, seeds, threshold=0.9)["below"] == 3


RESULTS_PAGE = ROOT / "docs" / "results.md"


def options(flag: str, values: list[str]) -> list[str]:
    return [arg for value in values for arg in (flag, value)]


def first_table(script: str, *args) -> tuple[list[str], str]:
    """Run a benchmarks/ script that renders docs/results.md's tables; the rows of the first table it prints
    (below its header and rule) and its whole output."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *map(str, args)], capture_output=True, text=True, check=True
    )
    return proc.stdout.split("\n\n")[0].splitlines()[2:], proc.stdout


def test_the_results_page_tables_come_from_the_committed_eval():
    """benchmarks/results_table.py renders docs/results.md's scores table from the committed eval.json: every task
    row of the page is what the tool makes of the evidence (the Gemma section is made the same way)."""
    pairs = ["selfspec=base [chat]", "seeds-only=base [chat]", "selfspec=seeds-only"]
    scores, out = first_table("results_table.py", ROOT / "docs" / "results", *options("--pair", pairs))
    tasks = [line for line in scores if not line.startswith(("| **average**", "| average"))]
    page = RESULTS_PAGE.read_text()
    assert len(tasks) == 12 and all(row in page for row in tasks), [row for row in tasks if row not in page]
    assert "| pubmedqa | yes 98%, no 1%, unparseable 1% | no 89%, yes 10% |" in out


def test_the_gemma_verdict_table_comes_from_the_committed_eval(tmp_path):
    """benchmarks/pool_seeds.py renders docs/results.md's Gemma verdict table (each arm's two training seeds pooled,
    the three pairs the page declared before any adapter was scored) from the committed k = 0 eval: every row of the
    page's table, averages included, is what the tool makes of the evidence."""
    pools = ["selfspec=selfspec-s1,selfspec-s2", "seeds-only=seeds-only-s1,seeds-only-s2"]
    pairs = ["selfspec=base", "selfspec=base@5", "selfspec=seeds-only"]
    evidence = ROOT / "docs" / "results" / "gemma" / "eval"
    rows, _ = first_table("pool_seeds.py", evidence, tmp_path, *options("--pool", pools), *options("--pair", pairs))
    page = RESULTS_PAGE.read_text()
    assert len(rows) == 14 and all(row in page for row in rows), [row for row in rows if row not in page]


B7_RUNS = ROOT / "benchmarks" / "results" / "b7"


def token_pool(legs: list, out) -> dict:
    """benchmarks/b7_tokens.py's pooled accounting of these committed B7 legs."""
    import subprocess
    import sys

    script = [sys.executable, str(ROOT / "benchmarks" / "b7_tokens.py"), *map(str, legs)]
    subprocess.run([*script, "--label", "x", "--result", str(out)], capture_output=True, check=True)
    return json.loads(out.read_text())["pools"]["x"]


def manifest_tokens(legs: list) -> int:
    manifests = [json.loads((leg / "manifest.json").read_text()) for leg in legs]
    return sum(m["stages"][s]["tokens"] for m in manifests for s in ("instructions", "responses"))


def test_every_generated_token_is_charged_to_an_items_fate(tmp_path):
    """benchmarks/b7_tokens.py (issue 32's accounting in docs/benchmarks.md): on the committed B7 demo legs every
    token the manifests counted is charged to a kept item or a rejection reason, and the page's numbers are what
    it computes from them."""
    legs = sorted(B7_RUNS.glob("7fe1741-demo@*"))
    pool = token_pool(legs, tmp_path / "tokens.json")
    manifests = [json.loads((leg / "manifest.json").read_text()) for leg in legs]
    assert len(legs) == 3 and pool["generated_tokens"] == manifest_tokens(legs) == 10232
    assert pool["triplets"] == sum(m["counts"]["triplets"] for m in manifests)
    assert sum(f["items"] for f in pool["fates"].values()) == sum(
        len((leg / name).read_text().splitlines()) for leg in legs for name in ("data.jsonl", "rejected.jsonl")
    )
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    parse_waste_free = pool["ceiling_if_free"]["parse waste (truncated, unparseable)"]
    assert f"| **kept triplets per 1K generated tokens** | **{pool['triplets_per_1k_tokens']}** |" in page
    assert f"| ceiling if parse waste (truncated + unparseable) had cost nothing | {parse_waste_free} |" in page


def test_a_stopped_requests_tokens_are_charged_to_the_quota(tmp_path):
    """The same accounting on legs that stop at the quota (the committed biomed200 legs of f39ad2f and of the
    reverted refill_as_needed, 1192bd3): a stopped request's tokens go to "stopped at the quota", every counted
    token is charged, and the page's numbers (where the waste moved) are what it computes."""
    from selfspec_plugin.fileio import read_jsonl

    charged = {}
    for rev in ("f39ad2f", "1192bd3"):
        legs = sorted(B7_RUNS.glob(f"xeon-{rev}-biomed200@*"))
        pool = token_pool(legs, tmp_path / f"{rev}.json")
        rows = [r for leg in legs for f in (leg / "instructions").glob("round-*.jsonl") for r in read_jsonl(f)]
        stopped = sum(r["tokens"] for r in rows if r["finish_reason"] == "abort")
        assert len(legs) == 2 and pool["fates"]["stopped at the quota"]["brainstorm_tokens"] == stopped > 0
        assert pool["generated_tokens"] == manifest_tokens(legs)
        charged[rev] = {fate: f"{spent['brainstorm_tokens']:,}" for fate, spent in pool["fates"].items()}
    page = " ".join((ROOT / "docs" / "benchmarks.md").read_text().split())
    before, after = charged["f39ad2f"], charged["1192bd3"]
    moved = (
        f"the stopped requests' tokens fell {before['stopped at the quota']} → {after['stopped at the quota']} "
        f"and the `truncated` items' rose {before['truncated']} → {after['truncated']}"
    )
    assert moved in page


def test_a_runs_legs_are_read_back_from_its_files_write_times(tmp_path):
    """benchmarks/replay_run.py's legs (docs/results.md's generation times): a pause longer than the gap between two
    written rounds or chunks ends a leg; a leg's minutes run from its first write to its last."""
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location("replay_run", ROOT / "benchmarks" / "replay_run.py")
    replay_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replay_run)
    t0 = 1_765_000_000  # 2025-12-06 05:46:40 UTC
    writes = {
        "instructions/round-00000.jsonl": 0,
        "responses/chunk-00000.jsonl": 90,
        "instructions/round-00001.jsonl": 240,
    }
    writes["instructions/round-00002.jsonl"] = 240 + 3600  # an hour's pause: a second leg
    for name, offset in writes.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
        os.utime(tmp_path / name, (t0 + offset, t0 + offset))
    assert replay_run.legs(tmp_path, gap_minutes=5) == [
        {"start": "2025-12-06 05:46", "end": "2025-12-06 05:50", "minutes": 4.0, "files": 3},
        {"start": "2025-12-06 06:50", "end": "2025-12-06 06:50", "minutes": 0.0, "files": 1},
    ]
    assert len(replay_run.legs(tmp_path, gap_minutes=61)) == 1


def test_an_arm_trained_with_several_seeds_is_scored_as_the_mean_of_its_adapters(tmp_path):
    """benchmarks/pool_seeds.py (docs/results.md's Gemma section: two training seeds per adapter): on the committed
    SmolLM2 eval, the two adapters pooled as one arm score each item as their mean, so the pooled average and its
    difference from the base are the means of the two adapters' own (the eval's committed numbers)."""
    import subprocess
    import sys

    script, committed = ROOT / "benchmarks" / "pool_seeds.py", ROOT / "docs" / "results"
    run = [sys.executable, str(script), str(committed), str(tmp_path / "pooled")]
    proc = subprocess.run(
        run + ["--pool", "both=selfspec,seeds-only", "--pair", "both=base [chat]"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    result, old = (json.loads((d / "eval.json").read_text()) for d in (tmp_path / "pooled", committed))
    average = {(a["model"], a["k"]): a["primary"] for a in old["averages"]}
    pooled = {(a["model"], a["k"]): a["primary"] for a in result["averages"]}
    assert pooled[("both", 0)] == pytest.approx((average[("selfspec", 0)] + average[("seeds-only", 0)]) / 2)
    assert pooled[("base [chat]", 0)] == pytest.approx(average[("base [chat]", 0)])
    diff = {(d["model"], d["reference"]): d["primary"]["diff"] for d in old["deltas"] if d["task"] == "average"}
    (both,) = [d["primary"]["diff"] for d in result["deltas"] if d["task"] == "average"]
    expected = (diff[("selfspec", "base [chat]")] + diff[("seeds-only", "base [chat]")]) / 2
    assert both == pytest.approx(expected) and "| **average** |  |  | 19.7 | 19.6 | 21.1 |" in proc.stdout
    wrong = subprocess.run(
        run + ["--pool", "x=selfspec,nope", "--pair", "x=base [chat]"], capture_output=True, text=True
    )
    assert wrong.returncode != 0 and "nope" in wrong.stderr
