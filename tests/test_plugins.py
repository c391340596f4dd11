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
