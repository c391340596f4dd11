"""Bad inputs through the real command line (`selfspec generate`): each fails with one clear paragraph that
names the file:line or the config field, exits non-zero, starts no engine (a backend registered through the
hook records whether it was built) and leaves no dataset behind."""

import json
import socket

import pytest
import yaml
from test_pipeline import scripted  # noqa: F401  (the scripted-backend fixture)

from selfspec_plugin.cli import main

GOOD = [
    {
        "id": f"s{i}",
        "instruction": f"Name the enzyme number {i} in the pathway below.",
        "input": "glycolysis",
        "output": "hexokinase",
    }
    for i in range(6)
]
LINES = [json.dumps(s) for s in GOOD]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# (name, seed file lines or bytes, corpus: None | lines | bytes, selfspec overrides, expected text in the error)
CASES = [
    ("malformed json line", [LINES[0], "{not json"] + LINES[1:], None, {}, "seeds.jsonl:2: not valid JSON"),
    (
        "missing field",
        LINES + [json.dumps({"instruction": "Say hi to the patient."})],
        None,
        {},
        "seeds.jsonl:7: missing field 'output'",
    ),
    (
        "wrong type",
        LINES + [json.dumps({"instruction": ["x"], "output": "y"})],
        None,
        {},
        "seeds.jsonl:7: field 'instruction' must be a string, got list",
    ),
    ("empty seeds file", [], None, {}, "no seed tasks in file"),
    ("duplicate ids", LINES + [LINES[2]], None, {}, "seeds.jsonl:7: duplicate id 's2' (first on line 3)"),
    (
        "seeds not UTF-8",
        b'{"instruction": "caf\xe9", "output": "x"}\n',
        None,
        {},
        "seeds.jsonl:1:21: not UTF-8 text (invalid continuation byte, byte 0xe9)",
    ),
    (
        "fewer seeds than demos",
        LINES[:4],
        None,
        {},
        "4 seed task(s), but selfspec.instruction_demos=3 and response_demos=5 need at least 5",
    ),
    ("corpus missing", LINES, "missing", {}, "selfspec.corpus: file not found"),
    ("corpus empty", LINES, [], {}, "holds no documents"),
    (
        "corpus not UTF-8",
        LINES,
        b'{"text": "\xff\xfe"}\n',
        {},
        "corpus.jsonl:1:11: not UTF-8 text (invalid start byte, byte 0xff)",
    ),
    (
        "corrupt parquet corpus",
        LINES,
        b"PAR1 this is not parquet",
        {"corpus_name": "corpus.parquet"},
        "not a readable parquet file",
    ),
    (
        "corpus line without text",
        LINES,
        [json.dumps({"text": "ok"}), json.dumps({"body": "x"})],
        {},
        "corpus.jsonl:2: missing string field 'text'",
    ),
    ("model path missing", LINES, None, {"model": "no/such-model-dir"}, "model not found: 'no/such-model-dir'"),
    (
        "unknown key",
        LINES,
        None,
        {"num_instructons": 5},
        "selfspec.num_instructons: unknown key; did you mean `num_instructions`?",
    ),
    ("temperature < 0", LINES, None, {"temperature": -0.5}, "selfspec.temperature: Input should be greater than"),
    ("top_p > 1", LINES, None, {"top_p": 1.5}, "selfspec.top_p: Input should be less than or equal to 1"),
    ("threshold 0", LINES, None, {"rouge_threshold": 0}, "selfspec.rouge_threshold: Input should be greater than 0"),
    ("threshold > 1", LINES, None, {"rouge_threshold": 1.01}, "selfspec.rouge_threshold: Input should be less than"),
    (
        "wrong value type",
        LINES,
        None,
        {"num_instructions": "many"},
        "selfspec.num_instructions: Input should be a valid integer",
    ),
    ("unknown backend", LINES, None, {"backend": "nosuch"}, "selfspec.backend: unknown backend 'nosuch' (available: "),
    ("unknown filter", LINES, None, {"filters": ["novelty", "nosuch"]}, "selfspec.filters: unknown filter 'nosuch'"),
    (
        "unknown retriever",
        LINES,
        [json.dumps({"text": "ok"})],
        {"retriever": "nosuch"},
        "selfspec.retriever: unknown retriever",
    ),
    (
        "invalid byte on line 3",
        ("".join(line + "\n" for line in LINES[:2]) + LINES[2].replace("pathway", "pathw\udcff") + "\n").encode(
            "utf-8", "surrogateescape"
        ),
        None,
        {},
        "seeds.jsonl:3:67: not UTF-8 text (invalid start byte, byte 0xff)",
    ),
    ("seeds is a directory", LINES, None, {"seeds": "."}, "seeds: TMP is a directory, expected a file"),
    (  # a folder is a corpus (corpus.py): here its one .jsonl has no `text` field
        "corpus folder",
        LINES,
        None,
        {"corpus": "."},
        "TMP/seeds.jsonl:1: missing string field 'text'",
    ),
    (
        "CSV saved as jsonl",
        ["instruction,input,output", "Name the enzyme,glycolysis,hexokinase"],
        None,
        {},
        "seeds.jsonl:1: not valid JSON (Expecting value at column 1); is this CSV?",
    ),
]


def write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text("".join(line + "\n" for line in content), encoding="utf-8")
    return path


def recipe(tmp_path, seed_lines, corpus_lines=None, corpus_name="corpus.jsonl", **overrides):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    block = {
        "seeds": str(write(tmp_path / "seeds.jsonl", seed_lines)),
        "backend": "scripted",
        "num_instructions": 4,
        "prompts_per_round": 4,
        "chunk_size": 2,
        **overrides,
    }
    if corpus_lines == "missing":
        block["corpus"] = str(tmp_path / "nowhere.jsonl")
    elif corpus_lines is not None:
        block["corpus"] = str(write(tmp_path / corpus_name, corpus_lines))
    path = tmp_path / "recipe.yml"
    path.write_text(yaml.safe_dump({"base_model": str(model), "selfspec": block, "output_dir": str(tmp_path / "out")}))
    return path


@pytest.mark.parametrize("command", ["generate", "iterate"])
@pytest.mark.parametrize("name, seeds, corpus, overrides, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_before_any_engine(
    scripted, tmp_path, capsys, name, seeds, corpus, overrides, expected, command
):
    code = main(
        [
            command,
            *(["--no-progress"] if command == "generate" else []),
            str(recipe(tmp_path, seeds, corpus, **overrides)),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    warned, _, error = err.partition("selfspec: error: ")  # (warnings first: a new run's seeds vs its settings)
    assert all(line.startswith("selfspec: warning: ") for line in warned.splitlines()), err
    assert error and expected.replace("TMP", str(tmp_path)) in error, err  # (. = the recipe's folder)
    assert "Traceback" not in err
    assert scripted.instances == []  # no backend (no engine) was started
    assert not (tmp_path / "out").exists()  # nothing written: no runs folder, no lock file


def test_invalid_yaml_and_missing_block(tmp_path, capsys):
    (tmp_path / "a.yml").write_text("selfspec: [unclosed\n")
    (tmp_path / "b.yml").write_text("base_model: x\n")
    assert main(["generate", str(tmp_path / "a.yml")]) == 2 and "not valid YAML" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "b.yml")]) == 2 and "no `selfspec:` block" in capsys.readouterr().err


def test_zero_kept_fails_with_the_funnel_and_no_dataset(scripted, tmp_path, capsys):
    path = recipe(tmp_path, LINES, max_rounds=2, backend_options={"mode": "empty"})
    assert main(["generate", "--no-progress", str(path)]) == 2
    err = capsys.readouterr().err
    assert "zero instructions survived the filters: 0 instructions kept" in err and "rejected: unparseable 8" in err
    assert "selfspec: error: zero instructions" in err and "selfspec: error: selfspec:" not in err  # one prefix
    assert not list(tmp_path.glob("out/selfspec/*/data.jsonl"))  # nothing to train on


def test_unreachable_server_fails_after_retries(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"
    path = recipe(
        tmp_path,
        LINES,
        backend="openai",
        model="served-model",
        backend_options={"base_url": url, "max_retries": 1, "backoff": 0.01, "timeout": 2},
    )
    assert main(["generate", "--no-progress", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"backend server unreachable: {url}/chat/completions failed 2 times" in err
    assert not list(tmp_path.glob("out/selfspec/*/data.jsonl"))


def test_files_from_other_machines_are_read_as_meant(scripted, tmp_path, capsys):
    """Windows line ends, a UTF-8 byte-order mark (Notepad, Excel) on the seeds, the corpus and the recipe, blank
    lines at the end: accepted, and the same seeds as the plain file."""
    from selfspec_plugin.seeds import load_seeds

    bom = "\ufeff".encode()
    seeds = write(tmp_path / "seeds.jsonl", bom + ("\r\n".join(LINES) + "\r\n\r\n\n").encode())
    corpus = write(
        tmp_path / "corpus.jsonl", bom + (json.dumps({"text": "Hexokinase starts glycolysis."}) + "\r\n").encode()
    )
    path = recipe(tmp_path, LINES)
    path.write_bytes(bom + path.read_bytes().replace(b"\n", b"\r\n"))
    raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    raw["selfspec"].update(seeds=str(seeds), corpus=str(corpus))
    path.write_bytes(bom + yaml.safe_dump(raw).encode())
    assert load_seeds(seeds) == load_seeds(write(tmp_path / "plain.jsonl", LINES))
    assert main(["seeds", "check", str(seeds)]) == 0
    assert main(["filter", str(seeds), str(tmp_path / "kept.jsonl")]) == 0  # any jsonl selfspec reads
    task = {"task": "t", "definition": "Name it.", "demos": [], "instances": [{"input": "x", "output": "y"}]}
    tasks = write(tmp_path / "tasks.jsonl", bom + (json.dumps(task) + "\r\n").encode())
    assert main(["seeds", "check", str(seeds), "--against", str(tasks)]) == 0  # eval task files (as eval reads them)
    yaml_seeds = write(tmp_path / "seeds.yaml", bom + yaml.safe_dump(GOOD).replace("\n", "\r\n").encode())
    assert load_seeds(yaml_seeds) == load_seeds(seeds) and main(["seeds", "check", str(yaml_seeds)]) == 0
    assert main(["generate", "--no-progress", str(path)]) == 0, capsys.readouterr().err
    assert "data.jsonl" in capsys.readouterr().out


def test_an_oversized_seed_field_is_accepted_with_a_warning(scripted, tmp_path, capsys):
    import time

    huge = {"id": "huge", "instruction": "Summarise the findings of this report. " * 52_000, "input": "", "output": "x"}
    path = recipe(tmp_path, LINES[:3] + [json.dumps(huge)] + LINES[3:])
    start = time.perf_counter()
    assert main(["seeds", "check", str(tmp_path / "seeds.jsonl")]) == 0
    assert time.perf_counter() - start < 30  # not slow: the ROUGE-L bound skips the impossible pairs
    err = capsys.readouterr().err
    size = len(huge["instruction"].strip())
    assert f"{tmp_path / 'seeds.jsonl'}:4: seed 'huge': field 'instruction' is {size:,} characters (over 8,000)" in err
    assert main(["generate", "--no-progress", str(path)]) == 0
    assert err.count("seed 'huge'") == 1 and capsys.readouterr().err.count("seed 'huge'") == 1  # once per run


def test_unreadable_file_and_unwritable_output_fail_cleanly(scripted, tmp_path, capsys):
    import os

    if os.geteuid() == 0:  # root reads a chmod-000 file: the unreadable case needs another user
        locked = None
    else:
        locked = write(tmp_path / "locked.jsonl", LINES)
        locked.chmod(0)
        assert main(["seeds", "check", str(locked)]) == 2
        assert f"{locked}: cannot read: Permission denied" in capsys.readouterr().err
    # /proc accepts no new folders (root or not): an output_dir where nothing can be written
    path = recipe(tmp_path, LINES)
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "output_dir": "/proc/selfspec-test/out"}))
    assert main(["generate", "--no-progress", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot create the folder /proc/selfspec-test/out/selfspec: No such file or directory" in err
    assert "Traceback" not in err and scripted.instances == []
    assert main(["filter", str(tmp_path / "seeds.jsonl"), "/proc/selfspec-test/kept.jsonl"]) == 2
    assert "could not write /proc/selfspec-test/kept.jsonl" in capsys.readouterr().err


def test_the_environment_the_cli_sets_is_the_one_install_md_names(monkeypatch, tmp_path):
    import os
    import re

    from conftest import ROOT

    from selfspec_plugin.cli import OFFLINE_ENV

    for key in OFFLINE_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")  # the user's own value wins, and WANDB_MODE is not the CLI's
    assert main(["seeds", "check", str(write(tmp_path / "seeds.jsonl", LINES))]) == 0
    assert {k: os.environ.get(k) for k in OFFLINE_ENV} == OFFLINE_ENV and os.environ["WANDB_MODE"] == "online"
    doc = (ROOT / "docs" / "install.md").read_text()
    cli_part = doc.split("Every `selfspec` command sets")[1].split("The Makefile")[0]
    assert set(re.findall(r"([A-Z_]+)=1", cli_part)) == set(OFFLINE_ENV)
    makefile = set(re.findall(r"^export ([A-Z_]+) = ", (ROOT / "Makefile").read_text(), re.M))
    assert makefile - {"PATH"} == set(OFFLINE_ENV) | {"WANDB_MODE"}
