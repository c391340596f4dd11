"""docs/results.md, re-checked from its committed evidence: the adapters in docs/results/adapters/ load with PEFT on
the model `selfspec fetch-demo-model` makes, and reproduce the committed predictions (docs/results/predictions.jsonl)
on the first items of every held-out task and of PubMedQA (needs ../shared/benchmarks, as CI has it).

The committed predictions were made by vLLM in bfloat16 with the adapters served by the engine; here PEFT applies
them on the transformers backend, also in bfloat16. Different kernels round differently, and a 135M model's greedy
continuation can part ways at a near-tie between two tokens ("false"/"False"), so the bar is agreement, not
identity. Measured when the evidence was committed (3 items per task, 66 predictions): 60 identical in bfloat16
(selfspec 31/33, seeds-only 29/33), 54 in float32 — the seeds-only adapter, 10 steps from the base, sits on the
base model's near-ties. And each adapter must agree with its own committed predictions more than with the other
adapter's: the adapters are the ones that made them."""

import json
from dataclasses import replace

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow
RESULTS = ROOT / "docs" / "results"
PER_TASK = 3  # the first items of every task, k = 0
AGREEMENT = 0.8


def test_committed_adapters_reproduce_the_committed_predictions(demo_model, bench, tmp_path):
    from selfspec_plugin.eval import load_tasks
    from selfspec_plugin.eval.run import Settings, evaluate, model_specs

    committed = {}
    for p in map(json.loads, (RESULTS / "predictions.jsonl").read_text().splitlines()):
        if p["k"] == 0 and p["item"] < PER_TASK:
            committed[p["model"], p["task"], p["item"]] = p
    specs = [str(ROOT / "seeds" / "eval" / "biomed.jsonl"), f"pubmedqa:{bench / 'pubmedqa'}"]
    tasks = [replace(t, instances=t.instances[:PER_TASK]) for spec in specs for t in load_tasks(spec)]
    adapters = model_specs([f"{name}={RESULTS / 'adapters' / name}" for name in ("selfspec", "seeds-only")], [])[1:]
    evaluate(
        str(demo_model),
        tasks,
        adapters,
        Settings(),
        backend_name="transformers",
        options={"dtype": "bfloat16"},
        out_dir=tmp_path / "eval",
        progress=False,
    )
    again = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert {p["model"] for p in again} == {"selfspec", "seeds-only"} and len(again) == 2 * PER_TASK * len(tasks)
    for p in again:  # the same items, scored the same way
        assert committed[p["model"], p["task"], p["item"]]["gold"] == p["gold"]
    same = [committed[p["model"], p["task"], p["item"]]["prediction"] == p["prediction"] for p in again]
    assert sum(same) / len(same) >= AGREEMENT, f"{sum(same)} of {len(same)} predictions identical"
    other = {"selfspec": "seeds-only", "seeds-only": "selfspec"}
    for name in other:
        mine = [p for p in again if p["model"] == name]
        own = sum(committed[name, p["task"], p["item"]]["prediction"] == p["prediction"] for p in mine)
        swapped = sum(committed[other[name], p["task"], p["item"]]["prediction"] == p["prediction"] for p in mine)
        assert own > swapped, f"{name}: {own} identical to its own committed predictions, {swapped} to the other's"


def test_the_committed_gemma_data_passes_every_gate_of_its_recipe_again():
    """docs/results.md's Gemma run: its 2,000 committed triplets, re-filtered with recipes/gemma-biomed.yml's settings
    (novelty against the seeds and each other, the data-quality gates, the label cap, off-domain), all pass. A filter
    whose rule changes later without a new run fails this: the committed evidence would no longer be what the
    filters keep (filters are named in the run key, their code is not)."""
    from selfspec_plugin.config import SelfSpecConfig
    from selfspec_plugin.pipeline import filter_records, filter_settings
    from selfspec_plugin.recipe import load
    from selfspec_plugin.seeds import load_seeds

    cfg = SelfSpecConfig(**load(str(ROOT / "recipes" / "gemma-biomed.yml"))["selfspec"])
    settings = filter_settings(cfg, load_seeds(cfg.seeds))
    data = [json.loads(line) for line in (RESULTS / "gemma" / "data.jsonl").read_text().splitlines()]
    rows = [{k: d[k] for k in ("instruction", "input", "output")} for d in data]
    kept, rejected = filter_records(rows, settings, cfg.filters)
    assert len(data) == 2000 and not rejected, [(r["rejected"], r["instruction"][:60]) for r in rejected[:5]]
