import json
from pathlib import Path

import pytest
from conftest import ROOT

from selfspec_plugin import dataset, fileio, rundirs
from selfspec_plugin.cli import main
from selfspec_plugin.errors import SelfSpecError
from selfspec_plugin.runner import make_job


@pytest.fixture
def model_dir(tmp_path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "llama"}')
    (d / "model.safetensors").write_bytes(b"\0" * 16)
    return d


def key(block, model, out="out"):
    return make_job(block, str(model), out).key


def test_run_key_tracks_what_shapes_the_output(tmp_path, model_dir):
    seeds = tmp_path / "s.jsonl"
    seeds.write_text((ROOT / "seeds" / "biomed.jsonl").read_text())
    base = key({"seeds": str(seeds)}, model_dir)
    assert base == key({"seeds": str(seeds), "chunk_size": 7, "runs_dir": str(tmp_path / "elsewhere")}, model_dir)
    assert base == key({"seeds": str(seeds), "vllm": {"gpu_memory_utilization": 0.5}}, model_dir)
    assert base != key({"seeds": str(seeds), "temperature": 0.9}, model_dir)
    assert base != key({"seeds": str(seeds), "vllm": {"dtype": "float32"}}, model_dir)
    (model_dir / "model.safetensors").write_bytes(b"\0" * 17)
    changed_model = key({"seeds": str(seeds)}, model_dir)
    assert changed_model != base
    seeds.write_text(seeds.read_text() + json.dumps({"instruction": "Define sepsis.", "output": "x"}) + "\n")
    assert key({"seeds": str(seeds)}, model_dir) != changed_model


def test_missing_inputs_are_clear(tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SelfSpecError, match="selfspec.seeds: file not found"):
        key({"seeds": str(tmp_path / "none.jsonl")}, model_dir)
    with pytest.raises(SelfSpecError, match="model not found"):
        key({"seeds": str(ROOT / "seeds" / "biomed.jsonl")}, tmp_path / "no-model")
    with pytest.raises(SelfSpecError, match="hub is offline"):
        key({"seeds": str(ROOT / "seeds" / "biomed.jsonl")}, "no-such-org/no-such-model")
    with pytest.raises(SelfSpecError, match="selfspec.model: no generator model"):
        make_job({"seeds": "s"}, None, "out")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "d.jsonl"
    fileio.write_jsonl(path, [{"a": 1}])

    def broken():
        yield {"a": 2}
        raise OSError("disk full")

    with pytest.raises(OSError):
        fileio.write_jsonl(path, broken())
    assert fileio.read_jsonl(path) == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["d.jsonl"]


def test_cli_reports_bad_block_with_field_and_exit_code(tmp_path, capsys):
    recipe = tmp_path / "r.yml"
    recipe.write_text("base_model: m\nselfspec:\n  seeds: s.jsonl\n  top_p: 2\n  seedz: x\n")
    assert main(["generate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "selfspec.top_p" in err and "selfspec.seedz" in err
    assert main(["generate", str(tmp_path / "missing.yml")]) == 2
    assert "config not found" in capsys.readouterr().err
    recipe.write_text("base_model: m\n")
    assert main(["generate", str(recipe)]) == 2
    assert "no `selfspec:` block" in capsys.readouterr().err


def test_iterative_rounds_get_their_own_run_key(tmp_path, model_dir):
    """`rounds` only tells `selfspec iterate` how often to go; the previous round (its run and its adapter's
    weights) shapes the output, so round 2 has its own run, and retraining round 1 makes round 2 stale."""
    seeds = str(ROOT / "seeds" / "biomed.jsonl")
    adapter = tmp_path / "round-1"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"\1" * 8)
    base = key({"seeds": seeds}, model_dir)
    assert key({"seeds": seeds, "rounds": 3}, model_dir) == base
    previous = {"run_dir": str(tmp_path / "run-1"), "adapter": str(adapter)}
    round2 = key({"seeds": seeds, "previous_round": previous}, model_dir)
    assert round2 != base
    (adapter / "adapter_model.safetensors").write_bytes(b"\2" * 8)
    assert key({"seeds": seeds, "previous_round": previous}, model_dir) != round2
    with pytest.raises(SelfSpecError, match="previous_round.adapter: no adapter_model.safetensors"):
        key({"seeds": seeds, "previous_round": {**previous, "adapter": str(tmp_path)}}, model_dir)


def test_round_config_derives_round_r_from_the_recipe():
    from selfspec_plugin.iterate import round_config

    raw = {
        "base_model": "m",
        "output_dir": "outputs/x",
        "dataset_prepared_path": "outputs/x/prep",
        "selfspec": {"seeds": "s.jsonl", "rounds": 2},
    }
    assert round_config(raw, 1, None) is raw
    previous = {"run_dir": "/r/1", "adapter": "/a/1"}
    cfg = round_config(raw, 2, previous)
    assert cfg["output_dir"] == "outputs/x/round-2" and cfg["dataset_prepared_path"] == "outputs/x/round-2/prepared"
    assert cfg["selfspec"] == {"seeds": "s.jsonl", "rounds": 2, "previous_round": previous}
    assert "previous_round" not in raw["selfspec"]  # the recipe itself is untouched
    assert round_config({"selfspec": {"seeds": "s"}}, 3, previous)["output_dir"] == "model-out/round-3"


def test_a_round_needs_a_finished_previous_run(tmp_path):
    from selfspec_plugin.pipeline import reuse_instructions

    with pytest.raises(SelfSpecError, match="previous_round.run_dir: .* is not a finished run"):
        reuse_instructions(tmp_path)


def test_iterate_retrains_a_round_only_when_its_adapter_is_missing_or_was_trained_otherwise(tmp_path):
    import yaml

    from selfspec_plugin.iterate import record_training, retrain_reason, training_fingerprint

    recipe = {
        "base_model": "m",
        "lora_r": 8,
        "output_dir": str(tmp_path / "out"),  # (paths as `load_recipe` gives them)
        "selfspec": {"seeds": str(tmp_path / "s.jsonl"), "eval_after_train": True},
    }
    assert training_fingerprint(recipe) == training_fingerprint(
        {**recipe, "selfspec": {"seeds": str(tmp_path / "s.jsonl"), "rounds": 3, "eval": {"limit": 2}}}
    )  # iterate/eval keys only
    assert training_fingerprint(recipe) != training_fingerprint({**recipe, "lora_r": 16})
    assert training_fingerprint(recipe) != training_fingerprint({**recipe, "selfspec": {"seeds": "t.jsonl"}})

    out, run = tmp_path / "out", tmp_path / "run"
    out.mkdir()
    run.mkdir()
    assert retrain_reason(out, run, recipe) == "not trained yet"
    (out / "adapter_model.safetensors").write_bytes(b"w")
    (run / dataset.MANIFEST).write_text("{}")
    (run / dataset.DATA).write_text("")
    assert "which settings trained that adapter is unknown" in retrain_reason(out, run, recipe)
    path = tmp_path / "recipe.yml"
    path.write_text(yaml.safe_dump(recipe))
    record_training(str(path), str(out))  # what the plugin does after `axolotl train`
    assert retrain_reason(out, run, recipe) is None
    assert "the config changed" in retrain_reason(out, run, {**recipe, "learning_rate": 0.1})


def test_weights_enter_the_run_key_by_content_and_their_hash_is_cached(tmp_path, monkeypatch):
    from selfspec_plugin.runner import make_job

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    weights = model / "model.safetensors"
    weights.write_bytes(b"A" * 4096)
    seeds = ROOT / "tests" / "data" / "seeds.jsonl"

    def key():
        return make_job({"seeds": str(seeds)}, str(model), str(tmp_path / "out")).key

    before = key()
    assert key() == before
    real = rundirs.sha256_file
    monkeypatch.setattr(
        rundirs,
        "sha256_file",
        lambda p: (
            (_ for _ in ()).throw(AssertionError(f"re-read {p}")) if Path(p).suffix == ".safetensors" else real(p)
        ),
    )
    assert key() == before  # the weights' hash came from the cache: not read again
    monkeypatch.setattr(rundirs, "sha256_file", real)

    weights.write_bytes(b"B" * 4096)  # rewritten at the same size (a re-export, a merged adapter)
    assert weights.stat().st_size == 4096 and key() != before
    weights.write_bytes(b"A" * 4096)
    assert key() == before  # the content, not the file's history, is the identity


def test_committed_files_with_the_old_format_words_load_in_the_one_vocabulary():
    # The committed evidence was written when manifests and markers named Axolotl's dataset type (`training_format`)
    # and the eval said `alpaca` for completion: every file still loads, in the words of prompts.FORMATS.
    from selfspec_plugin.eval.run import model_specs
    from selfspec_plugin.prompts import FORMATS

    manifests = sorted((ROOT / "docs" / "results").glob("**/manifest.json"))
    manifests += sorted((ROOT / "benchmarks" / "results").glob("**/manifest.json"))
    assert len(manifests) >= 10
    for path in manifests:
        raw = json.loads(path.read_text())
        loaded = dataset.Manifest.load(path.parent)
        assert loaded.prompt_format in FORMATS, path
        old = {"chat_template": "chat", "alpaca": "completion"}.get(raw.get("training_format"))
        assert loaded.prompt_format == (raw.get("prompt_format") or old), path
        assert "training_format" not in loaded.to_dict()  # recorded once from now on
    adapters = ROOT / "docs" / "results" / "adapters"
    specs = model_specs([f"{p.name}={p}" for p in sorted(adapters.iterdir())], [])
    assert [(s["name"], s["formats"]) for s in specs] == [
        ("base", ["completion", "chat"]),
        ("seeds-only", ["chat"]),  # their markers say training_format: chat_template
        ("selfspec", ["chat"]),
    ]
    eval_json = json.loads((ROOT / "docs" / "results" / "eval.json").read_text())
    assert {dataset.prompt_format(m["format"]) for m in eval_json["models"]} == set(FORMATS)
