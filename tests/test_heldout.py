"""Held-out hygiene of generated data: `selfspec decontaminate` on a run's data.jsonl, and `selfspec eval`'s
count of the scored items an adapter's training data reaches."""

import json

import yaml
from conftest import ROOT

from selfspec_plugin import heldout, hookimpl, report
from selfspec_plugin.cli import main
from selfspec_plugin.eval.tasks import Task

SEEDS = ROOT / "tests" / "data" / "seeds.jsonl"
QUESTION = "Which enzyme unwinds the DNA double helix ahead of the replication fork during S phase?"
TRIAL = "The phase III trial of drug X met its primary endpoint of overall survival at 24 months in adults."
TASK = {
    "task": "qa",
    "definition": "Answer.",
    "demos": [],
    "instances": [{"input": QUESTION, "output": "helicase"}, {"input": TRIAL, "output": "positive"}],
}


def triplet(rid: str, instruction: str, input_: str, output: str) -> dict:
    """A record as a chat-format run writes it: the retrieved `docs` and the chat `messages` beside the triplet."""
    return {
        "id": rid,
        "instruction": instruction,
        "input": input_,
        "output": output,
        "docs": ["biomed-0001"],
        "messages": [
            {"role": "user", "content": f"{instruction}\n\n{input_}"},
            {"role": "assistant", "content": output},
        ],
    }


COPY = triplet("r0-p1-0", "Classify the trial outcome.", TRIAL.replace("phase III ", ""), "positive")
ANSWERED = triplet("r0-p2-0", "Answer the question.", "", f"Q: {QUESTION} A: helicase.")
FINE = triplet("r0-p3-0", "Name the enzyme.", "It relieves the torsional strain of supercoiled DNA.", "topoisomerase")


def write_run(tmp_path, records) -> tuple:
    run = tmp_path / "run"
    run.mkdir()
    (run / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    held_out = tmp_path / "eval.jsonl"
    held_out.write_text(json.dumps(TASK) + "\n")
    return run, held_out


def test_decontaminate_flags_the_planted_copy_and_answer_not_the_clean_triplet(tmp_path, capsys):
    run, held_out = write_run(tmp_path, [COPY, FINE, ANSWERED])
    assert main(["decontaminate", str(run / "data.jsonl"), "--against", str(held_out)]) == 2
    out, err = capsys.readouterr()
    assert f"triplet {COPY['id']!r}: input has ROUGE-L 0.94 > 0.7 with held-out qa instance 1 ({held_out})" in err
    assert f"triplet {ANSWERED['id']!r}: holds the answer 'helicase' of held-out qa instance 0" in err
    assert "100% of its question's 4-grams (longest shared: 'which enzyme unwinds" in err
    assert FINE["id"] not in err
    assert "qa: 2 of 2 instances reached by 2 item(s)" in out
    assert "held-out check: 3 problem(s), 2 of 3 items in 1 file(s)" in out
    # the run folder is the same input; the user's thresholds let the near-copy through
    assert (
        main(["decontaminate", str(run), "--against", str(held_out), "--threshold", "0.99", "--overlap", "1.01"]) == 0
    )
    assert "held-out check: 0 problem(s), 0 of 3 items" in capsys.readouterr().out


def test_decontaminate_accepts_what_seeds_check_refuses_and_names_a_stray_spec(tmp_path, capsys):
    run, held_out = write_run(tmp_path, [FINE])
    assert main(["seeds", "check", str(run / "data.jsonl")]) == 2  # a run's data is not a seed file...
    assert "unknown field 'docs'" in capsys.readouterr().err
    assert main(["decontaminate", str(run), "--against", str(held_out)]) == 0  # ...but is generated data
    spec = f"pubmedqa:{tmp_path / 'pubmedqa'}"
    assert main(["decontaminate", str(run), "--against", str(held_out), spec]) == 2
    assert f"--against {held_out} --against {spec}" in capsys.readouterr().err
    (run / "data.jsonl").write_text(json.dumps({"id": "x", "instruction": ["not", "text"]}) + "\n")
    assert main(["decontaminate", str(run), "--against", str(held_out)]) == 2
    assert f"{run / 'data.jsonl'}:1: missing string field 'instruction'" in capsys.readouterr().err


def test_longest_span_is_the_longest_run_of_shared_grams():
    question = heldout.words("a b c d e f g h")
    shared = heldout.grams(heldout.words("a b c d x c d e f g h"))
    assert heldout.longest_span(question, shared) == "c d e f g h"
    assert heldout.longest_span(question, set()) == ""


def test_eval_names_the_items_an_adapters_training_data_reaches(tmp_path):
    from selfspec_plugin.eval.run import training_overlap
    from selfspec_plugin.iterate import record_training

    run, _ = write_run(tmp_path, [COPY, FINE])
    adapter, old = tmp_path / "adapter", tmp_path / "old"
    adapter.mkdir()
    old.mkdir()
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(yaml.safe_dump({"base_model": "m", "selfspec": {"seeds": "s.jsonl"}}))
    record_training(str(recipe), str(adapter), "chat", str(run / "data.jsonl"))  # as the plugin does
    task = Task("qa", "labels", "Answer.", [], TASK["instances"], "eval.jsonl", labels=["helicase", "positive"])
    models = [
        {"name": "base", "adapter": None},
        {"name": "selfspec", "adapter": str(adapter)},
        {"name": "old", "adapter": str(old)},
    ]
    rows = training_overlap([task], models, None)
    assert [(r["model"], r["task"], r.get("overlapping"), r.get("items")) for r in rows] == [
        ("selfspec", "qa", 1, 2),
        ("old", None, None, None),
    ]
    assert rows[0]["examples"][0] | {"score": None} == {
        "item": 1,
        "id": None,
        "input": repr(TRIAL[:69] + "…"),
        "record": COPY["id"],
        "rule": "copies",
        "score": None,
        "span": None,
    }
    lines = report.overlap_lines(rows)
    assert lines[0].startswith(
        f"- qa: 1 of 2 items overlap the training data of adapter selfspec ({run / 'data.jsonl'}), e.g. item 1 "
    )
    assert f"triplet {COPY['id']!r} ROUGE-L 0.94 with its input" in lines[0]
    assert lines[1] == "- adapter old: training data not checked: its selfspec-trained.json names no data"
    empty = {"rows": [], "averages": [], "deltas": [], "shots": [], "tasks": [], "models": [], "samplings": 1}
    table = report.markdown_table({**empty, "model": "m", "backend": "b", "limit": None, "wall_seconds": 1})
    assert "training data" not in table
    table = report.markdown_table(
        {**empty, "model": "m", "backend": "b", "limit": None, "wall_seconds": 1, "training_overlap": rows}
    )
    assert "Held-out items in the adapters' training data" in table and lines[0] in table


class Echo:
    """A backend that serves adapters per request and answers every prompt 'positive'."""

    name = "echo"
    chat_capable = False
    serves_adapters = True

    def __init__(self, model, options):
        pass

    def generate(self, prompts, sampling, mode, adapter=None):
        from selfspec_plugin.backends import Completion

        return [Completion("positive", "stop", 1) for _ in prompts]

    def close(self):
        pass


class EchoPlugin:
    @hookimpl
    def register_backends(self, register):
        register("echo", Echo)


def test_selfspec_eval_warns_and_reports_the_overlap(tmp_path, capsys):
    from selfspec_plugin import registry
    from selfspec_plugin.iterate import record_training

    run, held_out = write_run(tmp_path, [COPY, FINE])
    model, adapter = tmp_path / "model", tmp_path / "adapter"
    model.mkdir()
    (model / "config.json").write_text("{}")
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8}))
    (adapter / "adapter_model.safetensors").write_bytes(b"w")
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(
        yaml.safe_dump(
            {"base_model": str(model), "selfspec": {"seeds": str(SEEDS), "backend": "echo", "eval": {"shots": [0]}}}
        )
    )
    record_training(str(recipe), str(adapter), "completion", str(run / "data.jsonl"))
    plugin = EchoPlugin()
    registry.get_plugin_manager().register(plugin)
    try:
        args = ["eval", str(recipe), "--no-progress", "--adapter", f"selfspec={adapter}", "--task", str(held_out)]
        assert main([*args, "--out", str(tmp_path / "eval")]) == 0
    finally:
        registry.get_plugin_manager().unregister(plugin)
    out, err = capsys.readouterr()
    line = f"qa: 1 of 2 items overlap the training data of adapter selfspec ({run / 'data.jsonl'}), e.g. item 1 "
    assert f"selfspec: warning: - {line}" in err
    assert f"- {line}" in out and f"- {line}" in (tmp_path / "eval" / "eval.md").read_text()
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert [(r["task"], r["overlapping"], r["items"]) for r in result["training_overlap"]] == [("qa", 1, 2)]
