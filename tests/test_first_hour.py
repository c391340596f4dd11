"""A new user's first hour (issue 35): every problem of a bad block or seed file in one run, each once, with a hint
where a hint helps; path errors that say where they looked; `inspect` of a runs folder or a recipe; export-trl and
`recipe pack` that do not collide with the sender's files."""

import pytest
import yaml
from test_pipeline import scripted  # noqa: F401  (the scripted-backend fixture)

from selfspec_plugin.cli import main

BAD_BLOCK = {
    "seeds": "seeds.jsonl",
    "num_instruction": 20,
    "prompt_format": "chatty",
    "backend": "nosuch",
    "vllm": {"max_model_length": 4096},
}


def bad_recipe(tmp_path, block=BAD_BLOCK):
    if not (tmp_path / "seeds.jsonl").exists():
        (tmp_path / "seeds.jsonl").write_text('{"instruction": "Name it.", "output": "x"}\n')
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text("{}")
    path = tmp_path / "recipe.yml"
    plugins = ["selfspec_plugin.SelfSpecPlugin"]
    path.write_text(yaml.safe_dump({"base_model": str(tmp_path / "model"), "plugins": plugins, "selfspec": block}))
    return path


EXPECTED = [
    "selfspec.num_instruction: unknown key; did you mean `num_instructions`?",
    "selfspec.prompt_format: Input should be 'auto', 'completion' or 'chat'",
    "selfspec.vllm.max_model_length: unknown key; did you mean `max_model_len`?",
    "selfspec.backend: unknown backend 'nosuch'",
]


def test_every_problem_of_a_bad_block_in_one_run_each_once(tmp_path, capsys):
    assert main(["generate", str(bad_recipe(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "4 problem(s) in the selfspec block" in err
    for line in EXPECTED:
        assert err.count(line) == 1, (line, err)
    assert "Extra inputs are not permitted" not in err


def test_a_missing_file_and_a_bad_key_are_reported_together(tmp_path, capsys):
    block = {"seeds": "seeds.jsonl", "corpus": "contracts.jsonl", "domian": "contract law"}
    assert main(["generate", str(bad_recipe(tmp_path, block))]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s) in the selfspec block" in err and "selfspec.domian: unknown key; did you mean `domain`?" in err
    assert "selfspec.corpus: file not found: contracts.jsonl (resolved against the recipe's folder: " in err


def test_an_unknown_key_without_a_close_one_lists_the_known_keys(tmp_path, capsys):
    assert main(["generate", str(bad_recipe(tmp_path, {"seeds": "seeds.jsonl", "ray": {"zzz": 1}}))]) == 2
    assert "selfspec.ray.zzz: unknown key (the keys of selfspec.ray: address, replicas)" in capsys.readouterr().err


def test_recipe_check_names_each_problem_once(tmp_path, capsys):
    assert main(["recipe", "check", str(bad_recipe(tmp_path))]) == 2
    out = capsys.readouterr().out
    for line in EXPECTED:
        assert out.count(line.split(":")[0] + ":") == 1, (line, out)
    # Axolotl still checks its own keys (one line each, no pydantic links); the block is checked once, by us
    assert "FAIL  axolotl: learning_rate: Field required" in out and "errors.pydantic.dev" not in out
    assert "axolotl: selfspec" not in out


def test_axolotl_meets_the_same_one_list_before_validating(tmp_path):
    from axolotl.utils.dict import DictDefault

    from selfspec_plugin import SelfSpecPlugin
    from selfspec_plugin.errors import SelfSpecError

    cfg = DictDefault({"selfspec": BAD_BLOCK, "axolotl_config_path": "recipes/legal.yml"})
    with pytest.raises(SelfSpecError) as err:
        SelfSpecPlugin().register(cfg)
    assert str(err.value).startswith("recipes/legal.yml: 4 problem(s) in the selfspec block:\n")
    assert all(str(err.value).count(line) == 1 for line in EXPECTED)


def test_a_seed_file_with_several_faults_reports_all_of_them_in_one_run(write_seeds, capsys):
    good = '{"id": "a", "instruction": "Name the enzyme.", "output": "hexokinase"}'
    path = write_seeds(
        [
            good,
            '{"instruction": "Define sepsis."}',
            "not json at all",
            '{"instruction": 3, "output": "", "outptu": "z"}',
            good,
        ]
    )
    assert main(["seeds", "check", str(path)]) == 2
    errors = [line.removeprefix("error: ") for line in capsys.readouterr().err.splitlines() if "error: " in line]
    assert errors[:-1] == [
        f"{path}:2: missing field 'output'",
        f"{path}:3: not valid JSON (Expecting value at column 1)",
        f"{path}:4: unknown field 'outptu' (allowed: id, task_type, input, instruction, output)",
        f'{path}:4: field \'instruction\' must be a string, got int; write it as a JSON string: "instruction": "3"',
        f"{path}:4: field 'output' is empty",
        f"{path}:5: duplicate id 'a' (first on line 1)",
    ]
    assert main(["generate", str(bad_recipe(path.parent, {"seeds": path.name}))]) == 2  # a run: the same list
    err = capsys.readouterr().err
    assert all(line in err for line in errors[:-1]), err


def test_a_yaml_boolean_output_names_the_value_line_and_how_to_quote_it(write_seeds):
    from selfspec_plugin.errors import SelfSpecError
    from selfspec_plugin.seeds import load_seeds

    path = write_seeds(
        [
            "- id: termination-1",
            "  task_type: yes_no",
            "  instruction: >-",
            "    Does the clause let either party end the contract",
            "    without cause?",
            "  input: Either party may terminate this Agreement on 30 days' notice.",
            "  output: yes",
            "- id: notice-days",
            "  instruction: How many days of notice does the clause require?",
            "  input: Either party may terminate this Agreement on 30 days' notice.",
            "  output: 30",
        ],
        name="handwritten.yaml",
    )
    with pytest.raises(SelfSpecError) as err:
        load_seeds(path)
    assert str(err.value).splitlines() == [
        f"{path}:7: field 'output' must be a string, got bool; write it in quotes to keep it as text: output: \"yes\"",
        f"{path}:11: field 'output' must be a string, got int; write it in quotes to keep it as text: output: \"30\"",
    ]


def test_path_errors_say_what_they_were_resolved_against(tmp_path, monkeypatch, capsys):
    recipe = bad_recipe(tmp_path, {"seeds": "seeds.jsonl"})
    raw = yaml.safe_load(recipe.read_text())
    recipe.write_text(yaml.safe_dump({**raw, "base_model": "models/smollm2-135m-instruct"}))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["generate", str(recipe)]) == 2
    assert (
        "model not found: 'models/smollm2-135m-instruct' is not a local model directory (resolved against the "
        f"current directory {tmp_path / 'elsewhere'}) and the hub is offline" in capsys.readouterr().err
    )
    assert main(["eval", str(recipe), "--task", "contracts-heldout.jsonl"]) == 2
    assert (
        f"file not found: contracts-heldout.jsonl (resolved against the current directory {tmp_path / 'elsewhere'})"
        in capsys.readouterr().err
    )


def fake_runs(runs):
    """Two runs as generation leaves them: one finished (manifest + data), one stopped after its first round."""
    import json
    import os

    done, stopped = runs / "45a0d28ab8dfb8e6", runs / "0b1c2d3e4f5a6b7c"
    (done / "instructions").mkdir(parents=True)
    (stopped / "instructions").mkdir(parents=True)
    counts = {
        "requested": 4,
        "instructions_kept": 6,
        "triplets": 2,
        "rejected": {"similar": 1, "truncated_response": 3},
    }
    (done / "manifest.json").write_text(json.dumps({"counts": counts}))
    (done / "data.jsonl").write_text("")
    (stopped / "inputs.json").write_text("{}")
    (stopped / "instructions" / "round-00000.jsonl").write_text("")
    for age, run in ((100, done), (10, stopped)):
        for path in [run, *run.rglob("*")]:
            os.utime(path, (path.stat().st_atime - age, path.stat().st_mtime - age))
    return done, stopped


def test_inspect_a_runs_folder_lists_its_runs_newest_first(tmp_path, capsys):
    done, stopped = fake_runs(tmp_path / "selfspec")
    assert main(["inspect", str(tmp_path / "selfspec")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"2 run(s) in {tmp_path / 'selfspec'}, newest first:"
    assert lines[1].startswith(f"  {stopped.name}  ") and lines[1].endswith(
        "unfinished: 1 brainstorming round(s), 0 response chunk(s) written"
    )
    assert lines[2].startswith(f"  {done.name}  ") and lines[2].endswith(
        "finished: 6 instructions kept, 2 triplets (4 instructions requested); "
        "rejected: truncated_response 3, similar 1"
    )


def test_inspect_a_recipe_lists_the_runs_where_generate_puts_them(tmp_path, monkeypatch, capsys):
    from selfspec_plugin.cli import recipe_job

    recipe = bad_recipe(tmp_path, {"seeds": "seeds.jsonl"})
    recipe.write_text(yaml.safe_dump({**yaml.safe_load(recipe.read_text()), "output_dir": "outputs/legal"}))
    monkeypatch.chdir(tmp_path)  # output_dir: Axolotl's rule, the current directory
    done, _ = fake_runs(tmp_path / "outputs" / "legal" / "selfspec")
    done.rename(done.parent / recipe_job(str(recipe))[1].key)
    assert main(["inspect", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 run(s) in outputs/legal/selfspec, newest first:") and "<- this recipe's run" in out


def test_export_trl_puts_trls_output_dir_beside_the_axolotl_adapter(tmp_path):
    import json

    from selfspec_plugin.trl_export import export_trl

    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"counts": {"triplets": 1}, "training_format": "alpaca"}))
    (run / "data.jsonl").write_text(json.dumps({"instruction": "Name it.", "input": "", "output": "x"}) + "\n")
    raw = {"base_model": "m", "output_dir": "outputs/legal/", "lora_r": 8}
    config = yaml.safe_load(export_trl(raw, run, tmp_path / "trl").read_text())
    assert config["output_dir"] == "outputs/legal-trl"
    assert "# output_dir: beside the Axolotl adapter (outputs/legal/)" in (tmp_path / "trl" / "sft.yaml").read_text()


def test_pack_keeps_the_comments_and_warns_about_absolute_paths(tmp_path, capsys):
    import json
    import shutil
    import tarfile

    from conftest import ROOT

    (tmp_path / "recipes").mkdir()
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    text = (ROOT / "recipes" / "smoke-cpu.yml").read_text()
    text = text.replace("base_model: models/smollm2-135m-instruct", f"base_model: {tmp_path}/models/smollm2")
    (tmp_path / "recipes" / "smoke-cpu.yml").write_text(text)
    recipe = tmp_path / "recipes" / "smoke-cpu.yml"

    assert main(["recipe", "pack", str(recipe), "-o", str(tmp_path / "a.tar.gz")]) == 0
    assert (
        f"selfspec: warning: base_model: {tmp_path}/models/smollm2 is an absolute path: a receiver on this machine "
        "would use your folder (--drop-absolute-paths leaves it out)" in capsys.readouterr().err
    )
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        packed = tar.extractfile("recipe.yml").read().decode()
        meta = json.loads(tar.extractfile("bundle.json").read())
    assert "  num_instructions: 20          # paper: ~5000\n" in packed  # the recipe's own comments and layout
    assert "  seeds: seeds/biomed.jsonl\n  seeds_sha256: " in packed and f"base_model: {tmp_path}" in packed
    assert meta["corpus_included"] is False  # no corpus: none included

    assert main(["recipe", "pack", str(recipe), "-o", str(tmp_path / "b.tar.gz"), "--drop-absolute-paths"]) == 0
    assert "left out of the bundle (commented out) for the receiver to set" in capsys.readouterr().err
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        packed = tar.extractfile("recipe.yml").read().decode()
    assert f"\n# base_model: {tmp_path}/models/smollm2\n" in packed and "base_model" not in yaml.safe_load(packed)


def long_answers_recipe(tmp_path, model, **settings):
    """The demo recipe (its comments and all) over the 12 test seeds, two of whose outputs are made long, with the
    tiny model's tokenizer and `settings` in its selfspec block."""
    import json

    from conftest import ROOT

    seeds = [json.loads(line) for line in (ROOT / "tests" / "data" / "seeds.jsonl").read_text().splitlines()]
    for seed in seeds[:2]:
        seed["output"] = " ".join([seed["output"], "because the enzyme of the pathway is inhibited"] * 6)
    (tmp_path / "legal.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds))
    raw = yaml.safe_load((ROOT / "recipes" / "smoke-cpu.yml").read_text())
    raw["selfspec"].update(seeds="legal.jsonl", response_max_tokens=16, **settings)
    raw.update(base_model=str(model), output_dir=str(tmp_path / "out"))
    (tmp_path / "legal.yml").write_text(yaml.safe_dump(raw))
    return tmp_path / "legal.yml", seeds


def test_recipe_check_compares_the_seeds_with_the_token_caps_and_counts_them(tmp_path, tiny_model, capsys):
    from transformers import AutoTokenizer

    recipe, seeds = long_answers_recipe(tmp_path, tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    lengths = [len(tokenizer(s["output"], add_special_tokens=False)["input_ids"]) for s in seeds]
    over = sum(n > 16 for n in lengths)
    assert main(["recipe", "check", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert (
        f"warn  selfspec.response_max_tokens: 16, but {over} of 12 seeds' output are longer in this model's tokens "
        f"(the longest, seed {max(zip(lengths, [s['id'] for s in seeds]))[1]!r}: {max(lengths)}): generations as "
        "long as "
        f"those seeds are cut and rejected (truncated_response); raise response_max_tokens to at least {max(lengths)}"
        in out
    )
    assert (
        f"warn  seeds: {tmp_path / 'legal.jsonl'}: 12 seeds, below the paper's range of ~50-100 "
        "(the README recommends 50-100)" in out
    )
    assert "selfspec.instruction_max_tokens" not in out  # (192: the seeds' instructions fit)
    assert "recipe check: it would run (2 warning(s))" in out


def test_generate_says_it_before_a_new_run_starts(tmp_path, tiny_model, scripted, capsys):
    recipe, _ = long_answers_recipe(tmp_path, tiny_model, backend="scripted", instruction_max_tokens=8)
    main(["generate", "--no-progress", str(recipe)])
    err = capsys.readouterr().err
    assert "selfspec: warning: selfspec.response_max_tokens: 16, but " in err
    assert "selfspec: warning: selfspec.instruction_max_tokens: 8, but 12 of 12 seeds' instruction + input" in err
    assert "12 seeds, below the paper's range" in err
