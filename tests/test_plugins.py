import pytest

from selfspec_plugin import hookimpl, plugins
from selfspec_plugin.errors import SelfSpecError
from selfspec_plugin.filters import FilterSpec
from selfspec_plugin.pipeline import build_checks


def test_builtins_come_through_the_hooks():
    pm = plugins.get_plugin_manager()
    assert set(plugins.BUILTINS) <= {pm.get_name(p) for p in pm.get_plugins()}
    assert "vllm" in plugins.backends()
    assert {"start", "length", "blacklist", "novelty", "response"} <= set(plugins.filters())


def test_third_party_plugin_adds_a_backend_and_a_filter():
    class ThirdParty:
        @hookimpl
        def register_backends(self, register):
            register("echo", lambda model, options: ("echo", model, options))

        @hookimpl
        def register_filters(self, register):
            register(FilterSpec("no_questions", "instruction", lambda s: lambda r: "question" if "?" in r["instruction"] else None, order=5))

    pm = plugins.get_plugin_manager()
    plugin = ThirdParty()
    pm.register(plugin)
    try:
        assert plugins.make_backend("echo", "m", {"a": 1}) == ("echo", "m", {"a": 1})
        settings = {"min_words": 4, "max_words": 150, "blacklist": [], "rouge_threshold": 0.7, "existing": []}
        checks = build_checks("instruction", settings, ["no_questions", "length"])
        assert [c({"instruction": "Is this a question?", "input": ""}) for c in checks] == ["question", None]
    finally:
        pm.unregister(plugin)
    assert "echo" not in plugins.backends()


def test_unknown_backend_and_filter_are_named():
    with pytest.raises(SelfSpecError, match="selfspec.backend: unknown backend 'nope'"):
        plugins.make_backend("nope", "m", {})
    with pytest.raises(SelfSpecError, match="selfspec.filters: unknown filter 'nope'"):
        build_checks("instruction", {}, ["nope"])


def test_a_second_plugin_cannot_take_a_registered_name():
    class Shadow:
        @hookimpl
        def register_backends(self, register):
            register("vllm", lambda model, options: None)

    pm = plugins.get_plugin_manager()
    plugin = Shadow()
    pm.register(plugin, name="shadow-plugin")
    try:
        with pytest.raises(SelfSpecError, match="backend 'vllm' is registered by two plugins: "
                                                "selfspec_plugin.builtins.backends and shadow-plugin"):
            plugins.backends()
    finally:
        pm.unregister(plugin)
    assert plugins.backends()["vllm"].__name__ == "VLLMBackend"


def test_no_backend_name_decides_a_capability_outside_backends():
    """Capabilities are declared by the backends (backends/base.py): no module outside backends/ compares a
    backend's name with a built-in one."""
    import ast

    from conftest import ROOT

    names = set(plugins.backends())
    found = []
    for path in (ROOT / "selfspec_plugin").rglob("*.py"):
        if "backends" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
                found += [f"{path.name}:{node.lineno}: {v!r}" for v in consts if v in names]
    assert found == []


def test_backend_options_are_checked_against_the_backends_own_options():
    from selfspec_plugin.config import SelfSpecConfig

    cfg = SelfSpecConfig(seeds="s", backend="openai", backend_options={"base_url": "http://x/v1", "concurency": 4})
    with pytest.raises(SelfSpecError, match="backend 'openai': selfspec.backend_options.concurency: Extra inputs"):
        cfg.backend_settings()
    cfg = SelfSpecConfig(seeds="s", backend="transformers", backend_options={"batch_size": 0})
    with pytest.raises(SelfSpecError, match="selfspec.backend_options.batch_size: Input should be greater than 0"):
        cfg.backend_settings()
    assert SelfSpecConfig(seeds="s", backend="transformers", backend_options={"device": "cpu"}).backend_settings() == \
        {"device": "cpu", "trust_remote_code": False}
