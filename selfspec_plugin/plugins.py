"""The pluggy PluginManager: built-ins first, then everything under the `selfspec` entry-point group."""

from __future__ import annotations

import functools

import pluggy

from . import hookspecs
from .errors import SelfSpecError
from .filters import FilterSpec

BUILTINS = tuple(f"selfspec_plugin.builtins.{name}" for name in ("backends", "retrievers", "filters", "pipeline"))


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    import importlib

    pm = pluggy.PluginManager("selfspec")
    pm.add_hookspecs(hookspecs)
    for name in BUILTINS:
        pm.register(importlib.import_module(name), name=name)
    pm.load_setuptools_entrypoints("selfspec")
    return pm


def _collect(hook_name: str) -> dict:
    found: dict = {}

    def register(name_or_spec, factory=None):
        key = name_or_spec.name if isinstance(name_or_spec, FilterSpec) else name_or_spec
        found[key] = name_or_spec if factory is None else factory

    getattr(get_plugin_manager().hook, hook_name)(register=register)
    return found


def backends() -> dict:
    return _collect("register_backends")


def retrievers() -> dict:
    return _collect("register_retrievers")


def filters() -> dict[str, FilterSpec]:
    return _collect("register_filters")


def factory(kind: str, name: str, available: dict):
    if name not in available:
        raise SelfSpecError(f"selfspec.{kind}: unknown {kind} {name!r} (available: {', '.join(sorted(available))})")
    return available[name]


def make_backend(name: str, model: str, options: dict):
    return factory("backend", name, backends())(model, options)


def make_retriever(name: str, docs: list[dict], cache_dir):
    return factory("retriever", name, retrievers())(docs, cache_dir)
