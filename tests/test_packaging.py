"""Every third-party module the package imports is a declared dependency of pyproject.toml (or of one of its
extras, with a clear install hint before any work), and a backend whose extra is missing says so."""

import ast
import importlib.metadata
import re
import sys
import tomllib

from conftest import ROOT

from selfspec_plugin.cli import main

# Imported only when an Axolotl config turns them on (`use_wandb`, `use_trackio`); Axolotl's own trackers.
TRACKERS = {"wandb", "trackio"}


def imported_modules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / "selfspec_plugin").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("selfspec_plugin", "__future__"):
                    found.setdefault(top, set()).add(path.name)
    return found


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs):
        return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}

    return names(project["dependencies"]), names(r for reqs in project["optional-dependencies"].values() for r in reqs)


def test_every_imported_module_is_a_declared_dependency():
    core, extras = declared()
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module, files in imported_modules().items():
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if module not in TRACKERS and not dists & (core | extras):
            missing[module] = sorted(files)
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"
    assert "bm25s" in core  # imported by every recipe with a corpus


def test_a_backend_without_its_package_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(f'{{"instruction": "Name enzyme {i} of glycolysis.", "output": "x"}}\n' for i in range(6)))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    recipe = tmp_path / "r.yml"
    recipe.write_text(
        f"base_model: {tmp_path / 'm'}\nselfspec:\n  seeds: {seeds}\n  backend: ray\noutput_dir: {tmp_path / 'out'}\n"
    )
    assert main(["generate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "selfspec.backend: 'ray' needs the 'ray' package, which is not installed: pip install 'selfspec[ray]'" in err
    assert not (tmp_path / "out").exists()


def test_the_layers_import_one_way(tmp_path):
    """fileio (atomic writes, the one text/jsonl reader, the error type) imports nothing of selfspec, and errors only
    names fileio's error type: seeds, corpora, tasks and generated data read files without pulling in config, plugins or
    prompts. The imports are test_layers.py's graph: every spelling, at module level or inside a function."""
    from test_layers import graph, imported, modules

    edges = graph()
    assert edges["fileio"] == set()
    assert edges["loops"] == set()  # vLLM's sampling process imports it (backends/vllm_loops.py)
    assert edges["errors"] == {"fileio"}
    for reader in ("seeds", "retrieval", "corpus", "eval.tasks", "heldout"):
        assert edges[reader] <= {"errors", "fileio", "filters", "registry", "corpus"}, reader
    # (the check can fail: fileio importing config, in each way it can be written, is seen)
    for source in (
        "import selfspec_plugin.config\n",
        "from selfspec_plugin import config\n",
        "from .config import SelfSpecConfig\n",
        "def f():\n    from . import config\n",
    ):
        (tmp_path / "fileio.py").write_text(source)
        assert imported("fileio", tmp_path / "fileio.py", set(modules())) == {"config"}, source


def test_axolotl_selfspec_is_the_selfspec_click_group():
    """`axolotl selfspec ...` is the same click group as `selfspec ...` (Axolotl's `axolotl.cli_commands` entry point
    names it): same commands, same errors and exit status."""
    from axolotl.cli.main import cli as axolotl_cli
    from click.testing import CliRunner

    from selfspec_plugin.cli import cli

    assert importlib.metadata.entry_points(group="axolotl.cli_commands")["selfspec"].load() is cli
    ok = CliRunner().invoke(axolotl_cli, ["selfspec", "seeds", "check", str(ROOT / "seeds" / "biomed.jsonl")])
    assert ok.exit_code == 0 and "80 seeds" in ok.output, ok.output
    missing = CliRunner().invoke(axolotl_cli, ["selfspec", "seeds", "check", str(ROOT / "no-such-seeds.jsonl")])
    assert missing.exit_code == 2 and "selfspec: error: " in missing.output, missing.output
