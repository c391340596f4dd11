"""The shipped seed files, held-out eval sets and sample corpora: well-formed, and written by us
(no long word sequence shared with the public benchmarks in ../shared/benchmarks)."""

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT

from selfspec_plugin.retrieval import load_corpus
from selfspec_plugin.seeds import check_seeds, load_seeds

SEEDS = ROOT / "seeds"


def eval_tasks(domain):
    return [json.loads(line) for line in (SEEDS / "eval" / f"{domain}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name, count", [("biomed", 80), ("finance", 90)])
def test_seed_files_pass_the_checker(name, count):
    errors, warnings, types = check_seeds(SEEDS / f"{name}.jsonl")
    assert errors == [] and warnings == []
    assert sum(types.values()) == count and len(types) >= 8


@pytest.mark.parametrize("domain", ["biomed", "finance"])
def test_eval_sets_are_complete_and_held_out(domain):
    tasks = eval_tasks(domain)
    assert len(tasks) >= 10
    seeds = {(s["instruction"], s["input"]) for s in load_seeds(SEEDS / f"{domain}.jsonl")}
    seed_inputs = {inp for _, inp in seeds if inp}
    for task in tasks:
        assert set(task) - {"labels"} == {"task", "kind", "task_type", "definition", "demos", "instances"}
        assert len(task["demos"]) == 5 and len(task["instances"]) >= 15
        for inst in task["demos"] + task["instances"]:
            assert inst["input"].strip() and inst["output"].strip()
            assert inst["input"] not in seed_inputs
        inputs = [i["input"] for i in task["demos"] + task["instances"]]
        assert len(set(inputs)) == len(inputs)


@pytest.mark.parametrize("domain", ["biomed", "finance"])
def test_sample_corpora_load(domain):
    docs = load_corpus(SEEDS / "corpus" / f"{domain}-sample.jsonl")
    assert len(docs) >= 300 and len({d["id"] for d in docs}) == len(docs)


def _grams(text, n=12):
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_no_text_is_taken_from_the_public_benchmarks(bench):
    public = set()
    for line in (bench / "fpb" / "Sentences_AllAgree.txt").read_text(encoding="latin-1").splitlines():
        public |= _grams(line)
    for item in json.loads((bench / "pubmedqa" / "ori_pqal.json").read_text()).values():
        public |= _grams(" ".join([item["QUESTION"], *item["CONTEXTS"], item.get("LONG_ANSWER", "")]))
    for path in (bench / "ncbi-disease").glob("NCBI*_corpus.txt"):
        for line in path.read_text().splitlines():
            if "|t|" in line or "|a|" in line:
                public |= _grams(line.split("|", 2)[2])
    assert len(public) > 100_000
    ours = [line for path in SEEDS.rglob("*.jsonl") for line in path.read_text().splitlines()]
    shared = [line[:80] for line in ours if _grams(line) & public]
    assert shared == []


@pytest.mark.parametrize("ci, outcome", [("true", "1 error"), ("", "1 skipped")])
def test_missing_benchmarks_fail_under_ci_and_skip_elsewhere(tmp_path, ci, outcome):
    import os
    import subprocess
    import sys

    env = {**os.environ, "CI": ci, "SELFSPEC_BENCHMARKS": str(tmp_path / "absent")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{Path(__file__).parent / 'test_content.py'}::test_no_text_is_taken_from_the_public_benchmarks",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert outcome in proc.stdout, proc.stdout[-2000:]


def test_the_readme_lists_every_selfspec_key():
    """config.py's promise: each `selfspec:` key has a row in the README's table."""
    from selfspec_plugin.config import SelfSpecConfig

    rows = [line.split("|")[1] for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    listed = set(re.findall(r"`(\w+)`", " ".join(rows)))
    assert sorted(set(SelfSpecConfig.model_fields) - listed) == []
