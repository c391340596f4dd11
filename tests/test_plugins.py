import pytest
from test_pipeline import model_dir, scripted  # noqa: F401  (fixtures)

from selfspec_plugin import hookimpl, registry
from selfspec_plugin.errors import SelfSpecError
from selfspec_plugin.filters import FilterSpec
from selfspec_plugin.pipeline import build_checks


def test_builtins_come_through_the_hooks():
    pm = registry.get_plugin_manager()
    assert set(registry.BUILTINS) <= {pm.get_name(p) for p in pm.get_plugins()}
    assert "vllm" in registry.backends()
    assert {"start", "length", "blacklist", "novelty", "response"} <= set(registry.filters())


def test_third_party_plugin_adds_a_backend_and_a_filter():
    class ThirdParty:
        @hookimpl
        def register_backends(self, register):
            register("echo", lambda model, options: ("echo", model, options))

        @hookimpl
        def register_filters(self, register):
            register(
                FilterSpec(
                    "no_questions",
                    "instruction",
                    lambda s: lambda r: "question" if "?" in r["instruction"] else None,
                    order=5,
                )
            )

    pm = registry.get_plugin_manager()
    plugin = ThirdParty()
    pm.register(plugin)
    try:
        assert registry.make_backend("echo", "m", {"a": 1}) == ("echo", "m", {"a": 1})
        settings = {"min_words": 4, "max_words": 150, "blacklist": [], "rouge_threshold": 0.7, "existing": []}
        checks = build_checks("instruction", settings, ["no_questions", "length"])
        assert [c({"instruction": "Is this a question?", "input": ""}) for c in checks] == ["question", None]
    finally:
        pm.unregister(plugin)
    assert "echo" not in registry.backends()


def test_unknown_backend_and_filter_are_named():
    with pytest.raises(SelfSpecError, match="selfspec.backend: unknown backend 'nope'"):
        registry.make_backend("nope", "m", {})
    with pytest.raises(SelfSpecError, match="selfspec.filters: unknown filter 'nope'"):
        build_checks("instruction", {}, ["nope"])


def test_a_second_plugin_cannot_take_a_registered_name():
    class Shadow:
        @hookimpl
        def register_backends(self, register):
            register("vllm", lambda model, options: None)

    pm = registry.get_plugin_manager()
    plugin = Shadow()
    pm.register(plugin, name="shadow-plugin")
    try:
        with pytest.raises(
            SelfSpecError,
            match="backend 'vllm' is registered by two plugins: selfspec_plugin.builtins.backends and shadow-plugin",
        ):
            registry.backends()
    finally:
        pm.unregister(plugin)
    assert registry.backends()["vllm"].__name__ == "VLLMBackend"


def test_no_backend_name_decides_a_capability_outside_backends():
    """Capabilities are declared by the backends (backends/base.py): no module outside backends/ compares a
    backend's name with a built-in one."""
    import ast

    from conftest import ROOT

    names = set(registry.backends())
    found = []
    for path in (ROOT / "selfspec_plugin").rglob("*.py"):
        if "backends" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
                found += [f"{path.name}:{node.lineno}: {v!r}" for v in consts if v in names]
            # nor reads a backend's own options by its name (`settings["vllm"]`, `cfg.vllm`): the backend declares
            # which of them shape the output (its `not_output`), one mechanism, read through backends.base
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in names:
                found.append(f"{path.name}:{node.lineno}: [{node.slice.value!r}]")
            if isinstance(node, ast.Attribute) and node.attr in names | {"not_output", "VllmOptions", "RayOptions"}:
                found.append(f"{path.name}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.ImportFrom) and any(a.name in ("VllmOptions", "RayOptions") for a in node.names):
                found.append(f"{path.name}:{node.lineno}: imports an options model")
    assert found == []


def test_a_backend_that_does_not_subclass_backend_keeps_working(tmp_path):
    """A third-party factory that declares nothing gets Backend's defaults; one that declares `not_output` has those
    options left out of the run key, as the built-ins do."""
    from selfspec_plugin.backends.base import Backend, ability, output_options, start_options
    from selfspec_plugin.config import SelfSpecConfig
    from selfspec_plugin.runner import make_job, start_backend

    class Plain:  # no base class, no declarations
        def __init__(self, model, options):
            self.model, self.options = model, options

        def generate(self, prompts, sampling, prompt_format, adapter=None):
            return []

        def close(self):
            pass

    class Declared(Plain):
        not_output = frozenset({"speed"})

    class Plugin:
        @hookimpl
        def register_backends(self, register):
            register("plain", Plain)
            register("declared", Declared)

    pm = registry.get_plugin_manager()
    plugin = Plugin()
    pm.register(plugin, name="plain-plugin")
    try:
        for name in ("serves_adapters", "constrains_decoding", "remote_model", "Options", "context_tokens"):
            assert ability(Plain, name) == getattr(Backend, name)
        assert output_options(Plain, {"a": 1}) == {"a": 1} and output_options(Declared, {"speed": 2}) == {}
        with pytest.raises(SelfSpecError, match="'plain' cannot apply a LoRA adapter"):
            start_options("plain", Plain, {}, ["adapter-dir"])
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "config.json").write_text("{}")
        (tmp_path / "s.jsonl").write_text('{"instruction": "Name it.", "output": "x"}\n')

        def job(backend, options):
            block = {"seeds": str(tmp_path / "s.jsonl"), "backend": backend, "backend_options": options}
            return make_job(SelfSpecConfig(**block), str(tmp_path / "model"), str(tmp_path / "out"))

        started = start_backend(job("plain", {"x": 1}))
        assert isinstance(started, Plain) and started.options == {"x": 1, "trust_remote_code": False}
        assert job("declared", {"speed": 1}).key == job("declared", {"speed": 9}).key
        assert job("plain", {"speed": 1}).key != job("plain", {"speed": 9}).key
    finally:
        pm.unregister(plugin)


def test_backend_options_are_checked_against_the_backends_own_options():
    from selfspec_plugin.config import SelfSpecConfig

    cfg = SelfSpecConfig(seeds="s", backend="openai", backend_options={"base_url": "http://x/v1", "concurency": 4})
    with pytest.raises(SelfSpecError, match="backend 'openai': selfspec.backend_options.concurency: Extra inputs"):
        registry.backend_settings(cfg)
    cfg = SelfSpecConfig(seeds="s", backend="transformers", backend_options={"batch_size": 0})
    with pytest.raises(SelfSpecError, match="selfspec.backend_options.batch_size: Input should be greater than 0"):
        registry.backend_settings(cfg)
    assert registry.backend_settings(
        SelfSpecConfig(seeds="s", backend="transformers", backend_options={"device": "cpu"})
    ) == {
        "device": "cpu",
        "trust_remote_code": False,
    }


def test_a_plugin_replaces_the_pipeline_through_its_hooks_alone(scripted, model_dir, tmp_path):
    """A third-party `generate_dataset` (and its own `check_job`) returns a typed `Generated`; the runner writes
    data.jsonl, rejected.jsonl, instructions.jsonl, the card and manifest.json from it. A wrong result is named."""
    import json

    from test_pipeline import job

    from selfspec_plugin.dataset import Generated, Manifest
    from selfspec_plugin.runner import generate

    class Translated:
        checked = []

        @hookimpl
        def check_job(self, job):
            self.checked.append(job.key)  # the built-in seed checks are not run: this pipeline reads no seeds
            return True

        @hookimpl
        def generate_dataset(self, job, backend, progress):
            rows = [
                {"id": f"t{i}", "instruction": f"Translate term {i}.", "input": "", "output": f"terme {i}"}
                for i in range(3)
            ]
            manifest = Manifest(
                run_key=job.key,
                inputs=job.inputs,
                model=job.model,
                backend=backend.name,
                prompt_format="completion",
                versions={},
                counts={"instructions_kept": 3, "triplets": 3, "rejected": {"other": 1}, "requested": 3, "seeds": 0},
            )
            return Generated(rows, [{"id": "t9", "rejected": "other"}], rows, manifest)

    pm = registry.get_plugin_manager()
    plugin = Translated()
    pm.register(plugin)
    try:
        run_dir = generate(job(model_dir, tmp_path), progress=False)
        assert plugin.checked == [run_dir.name]
        data = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
        assert [r["output"] for r in data] == ["terme 0", "terme 1", "terme 2"] and not scripted.instances[0].calls
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["prompt_format"] == "completion" and manifest["backend"] == "scripted"
        assert (run_dir / "README.md").is_file() and (run_dir / "rejected.jsonl").read_text().count("\n") == 1

        Translated.generate_dataset = hookimpl(lambda self, job, backend, progress: {"data": []})
        pm.unregister(plugin)
        pm.register(Translated())
        with pytest.raises(
            SelfSpecError, match="the generate_dataset hook returned dict, expected selfspec_plugin.dataset.Generated"
        ):
            generate(job(model_dir, tmp_path / "bad"), progress=False)
        assert not list((tmp_path / "bad").rglob("manifest.json"))
    finally:
        for p in list(pm.get_plugins()):
            if isinstance(p, Translated):
                pm.unregister(p)


def test_a_plugin_registers_a_task_loader_through_its_hook_alone(tmp_path):
    """`register_tasks`: a spec `NAME:PATH` reaches the plugin's loader (in `selfspec eval` and in a recipe's
    `eval.tasks`, whose path part resolves against the recipe's folder); a taken name is refused."""
    from selfspec_plugin.eval import load_tasks
    from selfspec_plugin.eval.tasks import Task
    from selfspec_plugin.recipe import resolve_paths

    class Glossary:
        @hookimpl
        def register_tasks(self, register):
            def load(path):
                lines = path.read_text().splitlines()
                return Task(
                    "glossary",
                    "text",
                    "Define the term.",
                    demos=[],
                    source=str(path),
                    instances=[{"input": term, "output": meaning} for term, meaning in (x.split("=") for x in lines)],
                )

            register("glossary", load)

    (tmp_path / "terms.txt").write_text("ALT=alanine aminotransferase\nCRP=C-reactive protein\n")
    pm = registry.get_plugin_manager()
    plugin = Glossary()
    pm.register(plugin)
    try:
        (task,) = load_tasks(f"glossary:{tmp_path / 'terms.txt'}")
        assert task.instances[1] == {"input": "CRP", "output": "C-reactive protein"}
        block, missing = resolve_paths({"seeds": "s.jsonl", "eval": {"tasks": ["glossary:terms.txt"]}}, tmp_path)
        assert block["eval"]["tasks"] == [f"glossary:{tmp_path / 'terms.txt'}"] and not [
            m for m in missing if "eval" in m
        ]
    finally:
        pm.unregister(plugin)

    class Shadow:
        @hookimpl
        def register_tasks(self, register):
            register("pubmedqa", lambda path: None)

    pm.register(Shadow(), name="shadow-tasks")
    try:
        with pytest.raises(SelfSpecError, match="task 'pubmedqa' is registered by two plugins"):
            load_tasks("pubmedqa:x")
    finally:
        pm.unregister(name="shadow-tasks")
