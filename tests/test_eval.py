"""`selfspec eval`: planning, scoring, the benchmark loaders, adapters on the transformers backend and the
merged-weights fallback, and the command on the tiny model (the vLLM LoRA path runs in test_e2e)."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from tiny_model import random_lora

from selfspec_plugin import report
from selfspec_plugin.axolotl_plugin import tracker_metrics
from selfspec_plugin.config import EvalOptions
from selfspec_plugin.errors import SelfSpecError
from selfspec_plugin.eval import run as evaluate
from selfspec_plugin.eval import scoring, tasks
from selfspec_plugin.eval.tasks import Task


def toy_task(name="toy", kind="text", n=6, labels=None):
    return Task(
        name,
        kind,
        f"Do {name}.",
        demos=[{"input": f"demo input {i}", "output": f"demo output {i}"} for i in range(5)],
        instances=[{"input": f"input {i}", "output": ["yes", "no"][i % 2]} for i in range(n)],
        source="x",
        labels=labels,
        max_tokens=8,
    )


def test_plan_builds_one_request_per_item_k_and_sampling():
    reqs = evaluate.plan([toy_task("a"), toy_task("b", n=3)], shots=[0, 1, 2], samplings=3, limit=None, seed=0)
    assert len(reqs) == (6 + 3) * (1 + 3 + 3)
    assert len({r["prompt"].id for r in reqs}) == len(reqs)
    one = [r for r in reqs if r["task"] == "a" and r["k"] == 2]
    from selfspec_plugin.prompts import ALPACA_WITH_INPUT, alpaca_prompt

    def shown(r: dict) -> str:  # the demonstrations: every turn before the item's own
        return r["prompt"].text.rsplit(ALPACA_WITH_INPUT, 1)[0]

    demos = {r["sampling"]: shown(r) for r in one}
    assert len(set(demos.values())) > 1  # samplings draw different demonstrations ...
    assert all(shown(r) == demos[r["sampling"]] for r in one)  # ... shared by items
    # each a whole turn of the template, answered, then the item's turn
    item = one[0]["prompt"].text.rsplit(ALPACA_WITH_INPUT, 1)[1]
    assert demos[0].count("### Response:\ndemo output ") == 2 and item.endswith("### Response:\n")
    assert [m["role"] for m in one[0]["prompt"].messages] == ["user", "assistant"] * 2 + ["user"]
    zero = next(r for r in reqs if r["k"] == 0)
    assert zero["prompt"].text == alpaca_prompt("Do a.", "input 0")  # the template the adapter was trained with
    assert zero["prompt"].messages == ({"role": "user", "content": "Do a.\n\nInput: input 0"},)
    # the same demonstrations in another process (another hash seed): nothing depends on hash() or on state
    code = (
        "import json; from test_eval import toy_task; from selfspec_plugin.eval import run as evaluate; "
        "print(json.dumps([r['prompt'].text for r in evaluate.plan([toy_task('a')], [0, 1, 2], 3, None, 0)]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        env={**__import__("os").environ, "PYTHONHASHSEED": "123"},
        check=True,
    )
    assert json.loads(other.stdout) == [r["prompt"].text for r in reqs if r["task"] == "a"]
    reseeded = evaluate.plan([toy_task("a")], [2], 3, None, 1)  # another seed draws other demonstrations
    assert [r["prompt"].text for r in reseeded] != [r["prompt"].text for r in one]


def test_too_few_demonstrations_for_k_is_an_error():
    with pytest.raises(SelfSpecError, match="has 5 demonstrations, --shots asks for 6"):
        evaluate.plan([toy_task()], [6], 1, None, 0)


def test_limit_takes_the_same_items_every_time():
    task = toy_task(n=50)
    first = evaluate.subsample(task, 10)
    assert len(first) == 10 and first == evaluate.subsample(task, 10) and first != task.instances[:10]
    assert evaluate.subsample(task, 100) == task.instances


def toy_result(out: dict, labels: list[str], prompt_format: str, **settings) -> dict:
    """eval.json around summarize's output for the toy task at k = 0 and 1 (the base first, the rest adapters)."""
    return {
        **out,
        "tasks": [{"task": "toy", "primary": "accuracy"}],
        "samplings": 2,
        "shots": [0, 1],
        "model": "m",
        "models": [{"label": m, "adapter": None if m == "base" else m, "format": prompt_format} for m in labels],
        "backend": "b",
        "limit": None,
        "wall_seconds": 1,
        **settings,
    }


def test_summarize_scores_every_model_on_the_same_items():
    task = toy_task(kind="labels", labels=["yes", "no"], n=20)
    reqs = evaluate.plan([task], [0, 1], 2, None, 0)
    preds = {
        "base": ["maybe"] * len(reqs),
        "adapter": [f"{r['gold'].capitalize()}." for r in reqs],
        "constant": ["no"] * len(reqs),
    }
    out = scoring.summarize([task], reqs, preds, [("base", "adapter"), ("base", "constant"), ("constant", "adapter")])
    rows = {(r["model"], r["k"]): r for r in out["rows"]}
    assert rows[("base", 0)]["f1"] == 0 and rows[("adapter", 0)]["f1"] == 1.0
    assert rows[("adapter", 1)]["samplings"] == 2 and rows[("adapter", 1)]["n"] == 20
    assert rows[("adapter", 0)]["accuracy"] == 1.0 and rows[("base", 0)]["unparseable"] == 20
    assert rows[("adapter", 0)]["macro_f1"] == 1.0 and rows[("adapter", 0)]["primary"] == 1.0
    # the constant answerer: exactly the majority baseline, and its shares show the collapse
    assert rows[("constant", 0)]["accuracy"] == rows[("constant", 0)]["majority_accuracy"] == 0.5
    assert rows[("constant", 0)]["shares"] == {"yes": 0.0, "no": 1.0, "unparseable": 0.0}
    delta = {(d["reference"], d["model"], d["task"], d["k"]): d for d in out["deltas"]}
    assert (
        delta[("base", "adapter", "toy", 0)]["primary"]["diff"] == 1.0
        and delta[("base", "adapter", "toy", 0)]["f1"]["significant"]
    )
    assert delta[("constant", "adapter", "average", 1)]["primary"]["diff"] == 0.5  # adapters against each other too
    # every comparison of a metric is one family: the adjusted p-values are at least the raw ones
    for d in out["deltas"]:
        for metric in ("primary", "f1"):
            t = d[metric]
            assert t["p"] <= t["p_bh"] <= t["p_holm"] <= 1.0
    assert delta[("base", "adapter", "toy", 0)]["primary"]["p_holm"] < 0.05  # 20 of 20 items better
    assert {(a["model"], a["k"]): a["f1"] for a in out["averages"]}[("adapter", 1)] == 1.0

    result = toy_result(out, list(preds), "alpaca")
    table = report.markdown_table(result)
    assert "| toy | 0 | 20 | accuracy | 0.0 | 100.0 | 50.0 |" in table
    # p = 1/2001 (no sign flip of 20 wins reaches 100), Holm: times the 12 comparisons of the family
    assert "| toy | 0 | adapter − base | +100.0 [+100.0, +100.0] * p <0.001, Holm 0.006, BH 0.001 |" in table
    assert "12 paired comparisons of the primary metric: 12 intervals exclude 0, 12 survive Holm" in table
    assert (
        "acc 50.0 (majority 50.0, uniform 50.0), macro-F1 33.3 (majority 33.3), unparseable 0.0; answers: no 100%"
        in table
    )
    flat = tracker_metrics(result)
    assert (
        flat["selfspec_eval/toy/k0/adapter_f1"] == 1.0
        and flat["selfspec_eval/toy/k1/adapter-base_delta_primary"] == 1.0
    )


def test_the_base_alone_at_more_k_is_compared_with_every_adapter_on_the_same_items():
    """`base_shots`: the base scored at k = 1 too, the adapters at k = 0 only; each adapter's k = 0 is paired with
    the base's k = 1 item by item (the paper's baseline), and nothing is made up for the cells nobody scored."""
    task = toy_task(kind="labels", labels=["yes", "no"], n=20)
    reqs = evaluate.plan([task], [0, 1], 2, None, 0)
    at0 = [r["k"] == 0 for r in reqs]
    gold = [f"{r['gold']}" for r in reqs]
    preds = {
        "base": [g if (r["k"] == 1 and r["item"] < 15) else "maybe" for g, r in zip(gold, reqs)],  # 15/20 at k=1
        "adapter": [g if k0 else None for g, k0 in zip(gold, at0)],  # 20/20 at k = 0, not scored at k = 1
    }
    out = scoring.summarize([task], reqs, preds, [("base", "adapter")], [("base", 1, "adapter", 0)])
    assert {(r["model"], r["k"]) for r in out["rows"]} == {("base", 0), ("base", 1), ("adapter", 0)}
    assert {(a["model"], a["k"]) for a in out["averages"]} == {("base", 0), ("base", 1), ("adapter", 0)}
    deltas = {(d["reference"], d.get("reference_k", d["k"]), d["model"], d["k"], d["task"]): d for d in out["deltas"]}
    assert set(deltas) == {
        (ref, rk, "adapter", 0, t) for ref, rk in (("base", 0), ("base", 1)) for t in ("toy", "average")
    }
    assert deltas[("base", 0, "adapter", 0, "toy")]["primary"]["diff"] == 1.0
    # paired item by item: the 5 items the base misses at k = 1 are the only differences
    assert deltas[("base", 1, "adapter", 0, "toy")]["primary"]["diff"] == 0.25
    assert "reference_k" not in deltas[("base", 0, "adapter", 0, "toy")]  # a same-k delta is written as before
    table = report.markdown_table(toy_result(out, ["base", "adapter"], "completion", base_shots=[1]))
    assert "| toy | 1 | 20 | accuracy | 75.0 ± 0.0 | – |" in table
    assert "| average | 0 | adapter − base (k=1) | +25.0 [" in table
    assert "the base alone also at k = 1" in table


def test_an_eval_of_fewer_k_leaves_the_cache_files_a_combined_eval_reads():
    """Cache files per task and k: the base at `--shots 1` alone, then `--shots 0 --base-shots 1`, name the base's
    k = 1 predictions alike, so the combined eval scores nothing twice."""
    tasks_ = [toy_task("a"), toy_task("b")]
    identity = {"model": "m", "format": "alpaca", "adapter": None}
    alone = evaluate.cache_files(Path("c"), identity, evaluate._groups(evaluate.plan(tasks_, [1], 1, None, 0)))
    both = evaluate._groups(evaluate.plan(tasks_, [0, 1], 1, None, 0))
    combined = evaluate.cache_files(Path("c"), identity, both)
    assert len(combined) == 4 and set(alone) < set(combined)
    assert [g[0]["k"] for g in both] == [0, 1, 0, 1]
    assert (
        evaluate.spread(both, [False, True, False, True], ["x"] * 12) == [None] * 6 + ["x"] * 6 + [None] * 6 + ["x"] * 6
    )


def test_label_tasks_have_baselines_shares_and_a_parse_count():
    golds = ["yes"] * 6 + ["no"] * 2 + ["maybe"] * 2
    out = scoring.task_scores(
        toy_task(kind="labels", labels=["yes", "no", "maybe"]), ["Yes, it does."] * 9 + ["unclear"], golds
    )
    assert out["accuracy"] == 0.6 and out["unparseable"] == 1
    assert out["shares"] == {"yes": 0.9, "no": 0.0, "maybe": 0.0, "unparseable": pytest.approx(0.1)}
    assert out["majority_accuracy"] == 0.6 and out["uniform_accuracy"] == pytest.approx(1 / 3)
    # uniform guessing: label F1 = 2g / (1 + L g) for gold share g; mean over labels
    assert out["uniform_macro_f1"] == pytest.approx((2 * 0.6 / 2.8 + 2 * 0.2 / 1.6 + 2 * 0.2 / 1.6) / 3)
    assert out["majority_macro_f1"] == pytest.approx((2 * 6 / (12 + 4)) / 3)


def test_list_answers_get_set_f1_beside_box_f1():
    from selfspec_plugin import metrics

    gold = "adenine, guanine, cytosine, thymine"
    assert metrics.token_f1("thymine, adenine, cytosine, guanine", gold) == pytest.approx(
        0.4
    )  # BoX: the best alternative
    assert metrics.token_f1("adenine", gold) == 1.0  # ... which rewards one item
    assert metrics.set_f1("thymine, adenine, cytosine, guanine", gold) == 1.0
    assert metrics.set_f1("adenine", gold) == pytest.approx(0.4)
    assert metrics.set_f1("none", "none") == 1.0 and metrics.set_f1("adenine", "none") == 0.0
    out = scoring.task_scores(
        toy_task(kind="entities"), ["adenine", "Thymine; adenine; cytosine; guanine"], [gold, gold]
    )
    assert out["set_f1"] == pytest.approx(0.7) and out["primary_items"] == [pytest.approx(0.4), 1.0]


def test_yes_no_prefixed_answers_score_the_label_and_the_text_apart():
    from selfspec_plugin import metrics

    assert metrics.split_label("No, weekly vitamin D3 raised levels.", ["yes", "no"]) == (
        "no",
        "weekly vitamin D3 raised levels.",
    )
    assert metrics.split_label("Nothing changed.", ["yes", "no"]) == (None, "Nothing changed.")
    task = toy_task(kind="labeled_text", labels=["yes", "no"])
    golds = [
        "Yes, the exercise programme lowered blood pressure.",
        "No, vitamin D3 did not reduce falls.",
        "Warfarin carriers need lower doses.",
    ]  # the last gold has no label: text only
    bare = scoring.task_scores(task, ["yes", "no", "lower doses"], golds)
    assert bare["accuracy"] == 1.0 and bare["f1_items"][:2] == [1.0, 1.0]  # BoX F1 gives a bare "yes" full marks
    assert bare["primary_items"][:2] == [0.0, 0.0] and bare["text_f1"] < 0.3  # ... the text score does not
    full = scoring.task_scores(
        task,
        [
            "Yes, the exercise programme lowered blood pressure.",
            "Yes, it reduced falls.",
            "Warfarin carriers need lower doses.",
        ],
        golds,
    )
    assert full["accuracy"] == 0.5 and full["primary_items"][0] == 1.0 and full["primary_items"][2] == 1.0


def test_stratified_bootstrap_averages_tasks_with_equal_weight():
    from selfspec_plugin import metrics

    big, small = [0.0] * 100, [0.0] * 4
    out = metrics.stratified_bootstrap([big, small], [[1.0] * 100, [0.0] * 4])
    assert out["diff"] == 0.5 and out["ci"] == [0.5, 0.5]  # not 100/104
    assert metrics.paired_bootstrap([0, 0, 1, 1], [1, 0, 1, 0]) == metrics.stratified_bootstrap(
        [[0, 0, 1, 1]], [[1, 0, 1, 0]]
    )


def test_shipped_eval_tasks_declare_their_kinds():
    for path in sorted((ROOT / "seeds" / "eval").glob("*.jsonl")):
        loaded = tasks.load_task_file(path)
        kinds = {t.name: t.kind for t in loaded}
        assert set(kinds.values()) >= {"labels", "entities", "text"}, path
        for t in loaded:
            if t.kind == "labels":
                assert {i["output"] for i in t.instances} <= set(t.labels), t.name
    assert kinds["risk_classification"] == "labels"
    assert {t.name: t.kind for t in tasks.load_task_file(ROOT / "seeds" / "eval" / "biomed.jsonl")}[
        "long_answer_qa"
    ] == "labeled_text"


def test_task_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / "tasks.jsonl"
    toy = toy_task()
    good = json.dumps({"task": toy.name, "definition": toy.definition, "demos": toy.demos, "instances": toy.instances})
    path.write_text(
        good + "\n" + json.dumps({"task": "x", "definition": "d", "demos": [], "instances": [{"input": 1}]}) + "\n"
    )
    with pytest.raises(SelfSpecError, match=r"tasks.jsonl:2: field 'instances' must be a list of \{input, output\}"):
        tasks.load_tasks(str(path))
    path.write_text(good.replace('"task": "toy"', '"task": "toy", "kind": "labels"') + "\n")
    with pytest.raises(SelfSpecError, match="tasks.jsonl:1: a 'labels' task needs a non-empty 'labels' list"):
        tasks.load_tasks(str(path))
    assert [t.name for t in tasks.load_tasks(str(ROOT / "seeds" / "eval" / "biomed.jsonl"))][:2] == [
        "factoid_qa",
        "list_qa",
    ]


def test_benchmark_loaders_read_the_public_data_in_place(bench):
    pqa = tasks.load_tasks(f"pubmedqa:{bench / 'pubmedqa'}")[0]
    assert len(pqa.instances) == 500 and len(pqa.demos) == 500  # the official test split; demos from the rest
    assert not {d["input"] for d in pqa.demos} & {i["input"] for i in pqa.instances}
    assert {i["output"] for i in pqa.instances} == {"yes", "no", "maybe"} and pqa.kind == "labels"

    ncbi = tasks.load_tasks(f"ncbi-disease:{bench / 'ncbi-disease'}")[0]
    assert len(ncbi.instances) == 100 and len(ncbi.demos) == 593  # one PMID occurs twice in the training file
    assert ncbi.kind == "entities"
    first = next(i for i in ncbi.instances if i["input"].startswith("Genetic mapping of the copper toxicosis"))
    assert first["output"].startswith(
        "copper toxicosis, hepatic copper accumulation, inherited disorder, Wilson disease"
    )  # mentions in order, no repeats
    assert len(first["output"].split(", ")) == len(set(first["output"].split(", ")))

    fpb = tasks.load_tasks(f"fpb:{bench / 'fpb'}")[0]
    assert len(fpb.instances) + len(fpb.demos) == 2264 and 150 < len(fpb.demos) < 300
    assert {i["output"] for i in fpb.instances} == {"positive", "negative", "neutral"}


def test_bad_benchmark_path_is_a_clear_error(tmp_path):
    with pytest.raises(SelfSpecError, match="ori_pqal.json: file not found"):
        tasks.load_tasks(f"pubmedqa:{tmp_path}")
    (tmp_path / "fpb.txt").write_text("Shares rose.@bullish\n")
    with pytest.raises(SelfSpecError, match=r"fpb.txt:1: expected 'sentence@positive\|negative\|neutral'"):
        tasks.load_tasks(f"fpb:{tmp_path / 'fpb.txt'}")


@pytest.fixture(scope="module")
def random_adapter(tiny_model, tmp_path_factory):
    """A LoRA adapter with random (not zero) B matrices: it visibly changes the tiny model's outputs."""
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    return random_lora(tiny_model, tmp_path_factory.mktemp("adapter"), modules)


def _prompts():
    reqs = evaluate.plan([toy_task(n=4)], [0], 1, None, 0)
    return [r["prompt"] for r in reqs]


def test_transformers_backend_applies_an_adapter_per_request(tiny_model, random_adapter):
    from selfspec_plugin import registry
    from selfspec_plugin.backends import Sampling

    backend = registry.make_backend("transformers", str(tiny_model), {})
    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=12, seed=0)
    before = [c.text for c in backend.generate(_prompts(), sampling, "completion")]
    adapted = [c.text for c in backend.generate(_prompts(), sampling, "completion", adapter=str(random_adapter))]
    after = [c.text for c in backend.generate(_prompts(), sampling, "completion")]
    assert adapted != before
    assert after == before  # the base is served unchanged once the adapter is loaded


def test_merged_weights_fallback_equals_the_adapter(tiny_model, random_adapter, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged = evaluate.merge_adapter(str(tiny_model), str(random_adapter), tmp_path / "merged")
    ids = torch.tensor([[1, 5, 9, 13, 20]])
    with torch.no_grad():
        want = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), random_adapter)(ids).logits
        got = AutoModelForCausalLM.from_pretrained(merged)(ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model)(ids).logits
    assert torch.allclose(got, want, atol=1e-4) and not torch.allclose(got, base, atol=1e-2)


def test_a_merged_adapter_predicts_what_the_adapter_served_per_request_predicts(
    tiny_model, random_adapter, tmp_path, capsys
):
    """`eval.merge: true` scores base + adapter merged into plain weights (made once, then reused while the adapter's
    weights are the same); on the transformers backend in float32 on CPU the greedy predictions equal those of the
    adapter applied per request (PEFT), item for item. (vLLM in bf16 rounds the merged weight W + BA once where
    the LoRA path rounds W and BA apart: there a near-tie may go the other way.)"""
    task = toy_task(n=6)
    specs = evaluate.model_specs([f"mine={random_adapter}"], [])
    runs = {}
    for merge in (False, True, True):
        out = tmp_path / f"eval-{merge}"
        evaluate.evaluate(
            str(tiny_model),
            [task],
            specs,
            evaluate.Settings(shots=(0, 1), merge=merge),
            backend_name="transformers",
            options={},
            out_dir=out,
        )
        preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        runs[merge] = {m: [p["prediction"] for p in preds if p["model"] == m] for m in ("base", "mine")}
        shutil.rmtree(out / "cache")  # the second merged run makes its predictions again, from the kept weights
    (merged,) = (tmp_path / "eval-True" / "merged").iterdir()
    assert capsys.readouterr().err.count(f"reusing the merged weights in {merged}") == 1
    marker = json.loads((merged / "selfspec-merged.json").read_text())
    assert (
        marker["adapter_sha256"]
        == hashlib.sha256((random_adapter / "adapter_model.safetensors").read_bytes()).hexdigest()
    )
    assert runs[True]["mine"] == runs[False]["mine"] and runs[True]["base"] == runs[False]["base"]
    assert runs[True]["mine"] != runs[True]["base"]  # the adapter changes the answers: the equality says something
    assert json.loads((tmp_path / "eval-True" / "eval.json").read_text())["adapters_served"] == "merged"
    from selfspec_plugin import registry

    transformers, vllm = registry.backend("transformers"), registry.backend("vllm")
    assert evaluate.merge_wanted(True, transformers) and not evaluate.merge_wanted(False, vllm)
    assert not evaluate.merge_wanted("auto", transformers)  # its PEFT path is not the slow one
    assert evaluate.merge_wanted("auto", vllm) == (not __import__("torch").cuda.is_available())


@pytest.fixture(scope="module")
def second_adapter(tiny_model, tmp_path_factory):
    return random_lora(tiny_model, tmp_path_factory.mktemp("adapter2"), ["q_proj", "v_proj"], seed=1, rank=4)


def test_models_default_to_their_training_format(random_adapter, tmp_path):
    import shutil

    chat = tmp_path / "chat"
    shutil.copytree(random_adapter, chat)
    (chat / "selfspec-trained.json").write_text(json.dumps({"prompt_format": "chat"}))
    specs = evaluate.model_specs([f"selfspec={chat}", str(random_adapter)], [])
    assert [(s["name"], s["formats"]) for s in specs] == [
        ("base", ["completion", "chat"]),
        ("selfspec", ["chat"]),
        (Path(random_adapter).name, ["completion"]),
    ]
    assert evaluate.model_specs([f"x={chat}"], ["completion"])[1]["formats"] == ["completion", "chat"]  # --formats
    old = tmp_path / "old"  # a marker an earlier version wrote names Axolotl's dataset type
    shutil.copytree(random_adapter, old)
    for written, read in (("chat_template", "chat"), ("alpaca", "completion")):
        (old / "selfspec-trained.json").write_text(json.dumps({"training_format": written}))
        assert evaluate.model_specs([f"x={old}"], [])[1]["formats"] == [read]
    assert EvalOptions(formats=["alpaca", "chat"]).formats == ["completion", "chat"]  # a recipe's old word
    with pytest.raises(SelfSpecError, match="the name 'base' is taken"):
        evaluate.model_specs([f"base={chat}"], [])
    with pytest.raises(SelfSpecError, match="--adapter .*not a PEFT LoRA adapter"):
        evaluate.model_specs([str(tmp_path)], [])


@pytest.mark.slow
def test_selfspec_eval_scores_three_models_on_one_engine(tiny_model, random_adapter, second_adapter, tmp_path):
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(
        f"base_model: {tiny_model}\nselfspec:\n  seeds: {ROOT / 'tests' / 'data' / 'seeds.jsonl'}\n"
        f"  backend: transformers\n  eval: {{shots: [0, 1], samplings: 2, limit: 3}}\n"
        f"output_dir: {tmp_path / 'out'}\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfspec_plugin.cli",
            "eval",
            str(recipe),
            "--no-progress",
            "--adapter",
            f"one={random_adapter}",
            "--adapter",
            f"two={second_adapter}",
            "--task",
            str(ROOT / "seeds" / "eval" / "biomed.jsonl"),
            "--out",
            str(tmp_path / "eval"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    models = ("base", "one", "two")  # the tiny model has no chat template: every model in completion
    assert [m["label"] for m in result["models"]] == list(models)
    assert {(r["model"], r["k"]) for r in result["rows"]} == {(m, k) for m in models for k in (0, 1)}
    assert len(result["rows"]) == 3 * 2 * 10
    pairs = {(d["reference"], d["model"]) for d in result["deltas"]}
    assert pairs == {("base", "one"), ("base", "two"), ("one", "two")}
    assert len(result["deltas"]) == 3 * 2 * (10 + 1)  # every task and the average, per k
    assert all(r["n"] == 3 for r in result["rows"]) and all(
        r["samplings"] == (2 if r["k"] else 1) for r in result["rows"]
    )
    preds = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 3 * 10 * 3 * (1 + 2)
    by = {m: [p["prediction"] for p in preds if p["model"] == m] for m in models}
    assert by["one"] != by["base"] and by["two"] != by["base"] and by["one"] != by["two"]  # three different models
    assert (tmp_path / "eval" / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| factoid_qa | 0 | 3 | token F1 |" in (tmp_path / "eval" / "eval.md").read_text()
    assert "| average | 0 | two − one |" in proc.stdout


@pytest.mark.slow
def test_base_shots_on_the_tiny_model_reuse_an_earlier_eval_of_the_base(tiny_model, random_adapter, tmp_path):
    """The experiment's order: the base at k = 1 first (before any adapter exists), the adapter later; the
    combined `--shots 0 --base-shots 1` eval reads the first eval's cache and writes the cross-k comparison."""
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(
        f"base_model: {tiny_model}\nselfspec:\n  seeds: {ROOT / 'tests' / 'data' / 'seeds.jsonl'}\n"
        f"  backend: transformers\n  eval: {{samplings: 1, limit: 2}}\noutput_dir: {tmp_path / 'out'}\n"
    )
    task = ["--task", str(ROOT / "seeds" / "eval" / "biomed.jsonl")]

    def run(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "selfspec_plugin.cli", "eval", str(recipe), "--no-progress", *task, *args],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    run("--shots", "1", "--out", str(tmp_path / "base-k1"))
    shutil.copytree(tmp_path / "base-k1" / "cache", tmp_path / "eval" / "cache")
    before = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in (tmp_path / "eval" / "cache").iterdir()}
    assert len(before) == 10  # one file per task at k = 1
    out = run(
        "--shots", "0", "--base-shots", "1", "--adapter", f"one={random_adapter}", "--out", str(tmp_path / "eval")
    )
    after = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in (tmp_path / "eval" / "cache").iterdir()}
    assert {name: after[name] for name in before} == before  # read back, not scored again
    assert len(after) == 10 + 2 * 10  # the base and the adapter at k = 0
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert result["shots"] == [0, 1] and result["base_shots"] == [1]
    assert {(r["model"], r["k"]) for r in result["rows"]} == {("base", 0), ("base", 1), ("one", 0)}
    cross = [d for d in result["deltas"] if "reference_k" in d]
    assert len(cross) == 11 and {(d["reference"], d["reference_k"], d["model"], d["k"]) for d in cross} == {
        ("base", 1, "one", 0)
    }
    preds = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 3 * 10 * 2 and not any(p["model"] == "one" and p["k"] == 1 for p in preds)
    first = [json.loads(line) for line in (tmp_path / "base-k1" / "predictions.jsonl").read_text().splitlines()]
    assert [p for p in preds if p["k"] == 1] == first  # the same base predictions at k = 1
    assert "| average | 0 | one − base (k=1) |" in out and "| factoid_qa | 1 | 2 | token F1 |" in out


def test_eval_numbers_reach_the_trainings_trackio_project(tmp_path):
    """`eval_after_train` with `use_trackio: true`: the numbers land in the configured trackio project."""
    import sqlite3

    result = {
        "rows": [{"model": "base", "task": "t", "k": 0, "primary": 0.75, "f1": 0.25, "rougeL": 0.5}],
        "averages": [{"model": "base", "k": 0, "primary": 0.75, "f1": 0.25}],
        "deltas": [
            {"task": "t", "k": 0, "reference": "base", "model": "a", "primary": {"diff": 0.5}, "f1": {"diff": 0.125}}
        ],
    }
    code = (
        "import json, sys; from axolotl.utils.dict import DictDefault; "
        "from selfspec_plugin.axolotl_plugin import _log_to_trackers; "
        "_log_to_trackers(DictDefault(use_trackio=True, trackio_project_name='spec', trackio_run_name='r1', "
        "output_dir='out'), json.loads(sys.argv[1]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(result)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "TRACKIO_DIR": str(tmp_path)},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = sqlite3.connect(tmp_path / "spec.db").execute("select run_name, metrics from metrics").fetchall()
    assert [(name, json.loads(blob)) for name, blob in rows] == [
        (
            "r1",
            {
                "selfspec_eval/t/k0/base_primary": 0.75,
                "selfspec_eval/t/k0/base_f1": 0.25,
                "selfspec_eval/t/k0/base_rougeL": 0.5,
                "selfspec_eval/average/k0/base_primary": 0.75,
                "selfspec_eval/average/k0/base_f1": 0.25,
                "selfspec_eval/t/k0/a-base_delta_primary": 0.5,
                "selfspec_eval/t/k0/a-base_delta_f1": 0.125,
            },
        )
    ]
