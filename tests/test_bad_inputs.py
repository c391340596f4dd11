"""Bad inputs through the real command line (`selfspec generate`): each fails with one clear paragraph that
names the file:line or the config field, exits non-zero, starts no engine (a backend registered through the
hook records whether it was built) and leaves no dataset behind."""

import json
import socket

import pytest
import yaml

from selfspec_plugin.cli import main

from test_pipeline import scripted  # noqa: F401  (the scripted-backend fixture)

GOOD = [{"id": f"s{i}", "instruction": f"Name the enzyme number {i} in the pathway below.", "input": "glycolysis",
         "output": "hexokinase"} for i in range(6)]
LINES = [json.dumps(s) for s in GOOD]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# (name, seed file lines or bytes, corpus: None | lines | bytes, selfspec overrides, expected text in the error)
CASES = [
    ("malformed json line", [LINES[0], "{not json"] + LINES[1:], None, {}, "seeds.jsonl:2: not valid JSON"),
    ("missing field", LINES + [json.dumps({"instruction": "Say hi to the patient."})], None, {},
     "seeds.jsonl:7: missing field 'output'"),
    ("wrong type", LINES + [json.dumps({"instruction": ["x"], "output": "y"})], None, {},
     "seeds.jsonl:7: field 'instruction' must be a string, got list"),
    ("empty seeds file", [], None, {}, "no seed tasks in file"),
    ("duplicate ids", LINES + [LINES[2]], None, {}, "seeds.jsonl:7: duplicate id 's2' (first on line 3)"),
    ("seeds not UTF-8", b'{"instruction": "caf\xe9", "output": "x"}\n', None, {}, "seeds.jsonl:1: not UTF-8 text"),
    ("fewer seeds than demos", LINES[:4], None, {}, "4 seed task(s), but selfspec.instruction_demos=3 and "
     "response_demos=5 need at least 5"),
    ("corpus missing", LINES, "missing", {}, "selfspec.corpus: file not found"),
    ("corpus empty", LINES, [], {}, "holds no documents"),
    ("corpus not UTF-8", LINES, b'{"text": "\xff\xfe"}\n', {}, "corpus.jsonl:1: not UTF-8 text"),
    ("corrupt parquet corpus", LINES, b"PAR1 this is not parquet", {"corpus_name": "corpus.parquet"},
     "not a readable parquet file"),
    ("corpus line without text", LINES, [json.dumps({"text": "ok"}), json.dumps({"body": "x"})], {},
     "corpus.jsonl:2: missing string field 'text'"),
    ("model path missing", LINES, None, {"model": "no/such-model-dir"}, "model not found: 'no/such-model-dir'"),
    ("unknown key", LINES, None, {"num_instructons": 5}, "selfspec.num_instructons: Extra inputs are not permitted"),
    ("temperature < 0", LINES, None, {"temperature": -0.5}, "selfspec.temperature: Input should be greater than"),
    ("top_p > 1", LINES, None, {"top_p": 1.5}, "selfspec.top_p: Input should be less than or equal to 1"),
    ("threshold 0", LINES, None, {"rouge_threshold": 0}, "selfspec.rouge_threshold: Input should be greater than 0"),
    ("threshold > 1", LINES, None, {"rouge_threshold": 1.01}, "selfspec.rouge_threshold: Input should be less than"),
    ("wrong value type", LINES, None, {"num_instructions": "many"}, "selfspec.num_instructions: Input should be a valid integer"),
]


def write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text("".join(line + "\n" for line in content), encoding="utf-8")
    return path


def recipe(tmp_path, seeds, corpus=None, corpus_name="corpus.jsonl", **overrides):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    block = {"seeds": str(write(tmp_path / "seeds.jsonl", seeds)), "backend": "scripted", "num_instructions": 4,
             "prompts_per_round": 4, "chunk_size": 2, **overrides}
    if corpus == "missing":
        block["corpus"] = str(tmp_path / "nowhere.jsonl")
    elif corpus is not None:
        block["corpus"] = str(write(tmp_path / corpus_name, corpus))
    path = tmp_path / "recipe.yml"
    path.write_text(yaml.safe_dump({"base_model": str(model), "selfspec": block, "output_dir": str(tmp_path / "out")}))
    return path


@pytest.mark.parametrize("name, seeds, corpus, overrides, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_before_any_engine(scripted, tmp_path, capsys, name, seeds, corpus, overrides, expected):
    code = main(["generate", "--no-progress", str(recipe(tmp_path, seeds, corpus, **overrides))])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("selfspec: error: ") and expected in err, err
    assert "Traceback" not in err
    assert scripted.instances == []  # no backend (no engine) was started
    assert not list(tmp_path.glob("out/selfspec/*/*"))  # nothing written into a run directory


def test_invalid_yaml_and_missing_block(tmp_path, capsys):
    (tmp_path / "a.yml").write_text("selfspec: [unclosed\n")
    (tmp_path / "b.yml").write_text("base_model: x\n")
    assert main(["generate", str(tmp_path / "a.yml")]) == 2 and "not valid YAML" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "b.yml")]) == 2 and "no `selfspec:` block" in capsys.readouterr().err


def test_zero_kept_fails_with_the_funnel_and_no_dataset(scripted, tmp_path, capsys):
    path = recipe(tmp_path, LINES, max_rounds=2, backend_options={"mode": "empty"})
    assert main(["generate", "--no-progress", str(path)]) == 2
    err = capsys.readouterr().err
    assert "zero instructions survived the filters; funnel: " in err and "'unparseable': 8" in err
    assert not list(tmp_path.glob("out/selfspec/*/data.jsonl")) and not list(tmp_path.glob("out/selfspec/*/manifest.json"))


def test_unreachable_server_fails_after_retries(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"
    path = recipe(tmp_path, LINES, backend="openai", model="served-model",
                  backend_options={"base_url": url, "max_retries": 1, "backoff": 0.01, "timeout": 2})
    assert main(["generate", "--no-progress", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"backend server unreachable: {url}/chat/completions failed 2 times" in err
    assert not list(tmp_path.glob("out/selfspec/*/data.jsonl"))
