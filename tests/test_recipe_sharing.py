"""Recipes that travel: input paths relative to the recipe, pins, `selfspec recipe pack / unpack / check`."""

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from test_pipeline import scripted  # noqa: F401  (the scripted-backend fixture)

from selfspec_plugin.cli import main, recipe_job


@pytest.fixture
def smoke_copy(tmp_path, tiny_model):
    """recipes/smoke-cpu.yml with its seeds in the repository's layout (recipes/, seeds/) under a temp folder; its
    base_model (an Axolotl key, the receiver's business) points at the tiny model."""
    team = tmp_path / "team-a"
    (team / "recipes").mkdir(parents=True)
    shutil.copytree(ROOT / "seeds", team / "seeds")
    raw = yaml.safe_load((ROOT / "recipes" / "smoke-cpu.yml").read_text())
    raw["base_model"] = str(tiny_model)
    raw["selfspec"]["eval"] = {"tasks": ["../seeds/eval/biomed.jsonl"]}
    (team / "recipes" / "smoke-cpu.yml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return team / "recipes" / "smoke-cpu.yml"


def run_key(recipe: Path) -> str:
    _, job = recipe_job(str(recipe))
    return job.key


def test_input_paths_resolve_against_the_recipe_from_any_directory(smoke_copy, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    raw, job = recipe_job(str(smoke_copy))
    assert job.config.seeds == str(smoke_copy.parent / "../seeds/biomed.jsonl")
    assert raw["selfspec"]["eval"]["tasks"] == [str(smoke_copy.parent / "../seeds/eval/biomed.jsonl")]
    assert raw["base_model"] == job.model  # Axolotl's keys keep Axolotl's rules

    moved = yaml.safe_load(smoke_copy.read_text())
    moved["selfspec"]["corpus"] = "corpus/missing.jsonl"
    (tmp_path / "moved.yml").write_text(yaml.safe_dump(moved))
    assert main(["generate", str(tmp_path / "moved.yml")]) == 2
    err = capsys.readouterr().err
    assert "selfspec.seeds: file not found: ../seeds/biomed.jsonl (resolved against the recipe's folder: " in err
    assert (
        "selfspec.corpus: file not found: corpus/missing.jsonl "
        f"(resolved against the recipe's folder: {tmp_path}/corpus/missing.jsonl)" in err
    )


def test_the_run_key_does_not_depend_on_where_the_files_are(smoke_copy, tmp_path):
    other = tmp_path / "elsewhere"
    shutil.copytree(smoke_copy.parent.parent, other)
    assert run_key(smoke_copy) == run_key(other / "recipes" / "smoke-cpu.yml")
    raw = yaml.safe_load(smoke_copy.read_text())
    raw["selfspec"]["seeds"] = str((smoke_copy.parent / "../seeds/biomed.jsonl").resolve())  # absolute: same key
    (smoke_copy.parent / "abs.yml").write_text(yaml.safe_dump(raw))
    assert run_key(smoke_copy.parent / "abs.yml") == run_key(smoke_copy)
    raw["selfspec"]["retrieval_k"] = 3  # a setting written out at its default: same key
    (smoke_copy.parent / "abs.yml").write_text(yaml.safe_dump(raw))
    assert run_key(smoke_copy.parent / "abs.yml") == run_key(smoke_copy)
    raw["selfspec"]["response_demos"] = 4  # a setting that changes the output: another key
    (smoke_copy.parent / "abs.yml").write_text(yaml.safe_dump(raw))
    assert run_key(smoke_copy.parent / "abs.yml") != run_key(smoke_copy)


def test_pack_unpack_check_round_trip_keeps_the_run_key(smoke_copy, tmp_path, monkeypatch, capsys):
    original = run_key(smoke_copy)
    (tmp_path / "one").mkdir()
    monkeypatch.chdir(tmp_path / "one")
    assert main(["recipe", "pack", str(smoke_copy), "-o", "smoke.tar.gz"]) == 0
    with tarfile.open(tmp_path / "one" / "smoke.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["bundle.json", "eval/biomed.jsonl", "recipe.yml", "seeds/biomed.jsonl"]
    assert main(["recipe", "unpack", str(tmp_path / "one" / "smoke.tar.gz"), str(tmp_path / "two")]) == 0
    packed = yaml.safe_load((tmp_path / "two" / "recipe.yml").read_text())["selfspec"]
    seeds_sha = hashlib.sha256((ROOT / "seeds" / "biomed.jsonl").read_bytes()).hexdigest()
    assert (packed["seeds"], packed["seeds_sha256"]) == ("seeds/biomed.jsonl", seeds_sha)
    assert packed["eval"]["tasks"] == ["eval/biomed.jsonl"] and list(packed["eval"]["tasks_sha256"]) == [
        "eval/biomed.jsonl"
    ]
    meta = json.loads((tmp_path / "two" / "bundle.json").read_text())
    assert meta["bundle"] == "smoke.tar.gz" and "selfspec" in meta["versions"] and "axolotl" in meta["versions"]

    (tmp_path / "three").mkdir()
    monkeypatch.chdir(tmp_path / "three")
    capsys.readouterr()
    assert main(["recipe", "check", str(tmp_path / "two" / "recipe.yml")]) == 0
    out = capsys.readouterr().out
    assert f"run key: {original}" in out and "it would run" in out and "FAIL" not in out
    assert "selfspec.seeds: seeds/biomed.jsonl -> " in out and "matches its pin" in out
    assert "axolotl: the whole config validates" in out and "seeds check: 80 seeds" in out
    assert main(["recipe", "check", str(tmp_path / "one" / "smoke.tar.gz")]) == 0  # the bundle itself
    assert f"run key: {original}" in capsys.readouterr().out


def test_a_tampered_file_stops_check_generate_and_eval_naming_both_hashes(smoke_copy, tmp_path, monkeypatch, capsys):
    from selfspec_plugin.recipe import pack, unpack

    recipe = unpack(pack(smoke_copy, tmp_path / "b.tar.gz"), tmp_path / "unpacked")
    seeds = tmp_path / "unpacked" / "seeds" / "biomed.jsonl"
    expected = hashlib.sha256(seeds.read_bytes()).hexdigest()
    data = bytearray(seeds.read_bytes())
    data[10] = ord("X") if data[10] != ord("X") else ord("Y")  # one byte changed
    seeds.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    monkeypatch.chdir(tmp_path)
    assert main(["recipe", "check", str(recipe)]) == 2
    out = capsys.readouterr().out
    assert (
        f"FAIL  selfspec.seeds: {seeds} has changed since the recipe pinned it: "
        f"expected sha256 {expected}, the file has {actual}" in out
    )
    assert main(["generate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert (
        f"selfspec.seeds_sha256: {seeds} has changed since the recipe pinned it" in err
        and expected in err
        and actual in err
    )
    assert not (tmp_path / "outputs").exists()  # nothing written

    task = tmp_path / "unpacked" / "eval" / "biomed.jsonl"
    task.write_text(task.read_text() + "\n")
    seeds.write_bytes((smoke_copy.parent / "../seeds/biomed.jsonl").read_bytes())
    assert main(["eval", str(recipe), "--out", str(tmp_path / "ev")]) == 2
    assert f"selfspec.eval.tasks_sha256: {task} has changed since the recipe pinned it" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()


def test_no_corpus_bundles_pin_the_corpus_the_receiver_supplies(smoke_copy, tmp_path, capsys):
    from selfspec_plugin.recipe import pack, unpack

    raw = yaml.safe_load(smoke_copy.read_text())
    raw["selfspec"]["corpus"] = "../seeds/corpus/biomed-sample.jsonl"
    smoke_copy.write_text(yaml.safe_dump(raw))
    recipe = unpack(pack(smoke_copy, tmp_path / "b.tar.gz", with_corpus=False), tmp_path / "u")
    assert not (tmp_path / "u" / "corpus").exists()
    assert main(["recipe", "check", str(recipe)]) == 2
    assert "FAIL  selfspec.corpus: file not found: corpus/biomed-sample.jsonl" in capsys.readouterr().out
    (tmp_path / "u" / "corpus").mkdir()
    shutil.copy(ROOT / "seeds" / "corpus" / "biomed-sample.jsonl", tmp_path / "u" / "corpus")
    assert main(["recipe", "check", str(recipe)]) == 0
    assert "selfspec.corpus: corpus/biomed-sample.jsonl -> " in capsys.readouterr().out


def hostile(path: Path, add) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("recipe.yml")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"a: 1\n"))
        add(tar)
    return path


@pytest.mark.parametrize(
    "name, add, why",
    [
        ("absolute", lambda t: t.addfile(tarfile.TarInfo("/tmp/evil"), io.BytesIO(b"")), "an absolute path"),
        ("dotdot", lambda t: t.addfile(tarfile.TarInfo("seeds/../../evil"), io.BytesIO(b"")), "leaves the folder"),
        ("symlink", lambda t: t.addfile(_link("seeds/x.jsonl", "/etc/passwd")), "a link"),
    ],
)
def test_unpack_refuses_a_hostile_archive_before_writing_anything(tmp_path, capsys, name, add, why):
    bundle = hostile(tmp_path / f"{name}.tar.gz", add)
    assert main(["recipe", "unpack", str(bundle), str(tmp_path / "dest")]) == 2
    err = capsys.readouterr().err
    assert "refused, the archive holds" in err and why in err
    assert not (tmp_path / "dest").exists()


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def test_the_manifest_and_card_name_the_recipe_and_its_bundle(scripted, smoke_copy, tmp_path, monkeypatch):
    from selfspec_plugin.recipe import pack, unpack

    raw = yaml.safe_load(smoke_copy.read_text())
    raw["selfspec"].update(backend="scripted", num_instructions=4, prompts_per_round=4)
    raw["output_dir"] = str(tmp_path / "out")
    smoke_copy.write_text(yaml.safe_dump(raw))
    recipe = unpack(pack(smoke_copy, tmp_path / "team.tar.gz"), tmp_path / "u")
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--no-progress", str(recipe)]) == 0
    (run,) = (tmp_path / "out" / "selfspec").glob("*/manifest.json")
    made = json.loads(run.read_text())["recipe"]
    assert made == {
        "path": str(recipe),
        "sha256": hashlib.sha256(recipe.read_bytes()).hexdigest(),
        "bundle": "team.tar.gz",
    }
    card = (run.parent / "README.md").read_text()
    assert (
        f"Made with the recipe `recipe.yml` (sha256 `{made['sha256'][:16]}…`, unpacked from the bundle `team.tar.gz`)"
        in card
    )
