"""The pluggy PluginManager: built-ins first, then everything under the `selfspec` entry-point group."""

from __future__ import annotations

import functools

import pluggy

from . import hookspecs
from .backends.base import ability, backend_options
from .errors import SelfSpecError
from .filters import FilterSpec

BUILTINS = tuple(
    f"selfspec_plugin.builtins.{name}" for name in ("backends", "retrievers", "filters", "pipeline", "tasks")
)


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
    """Every plugin's registrations for one hook. A name registered twice (a third-party plugin reusing a built-in's
    name, or two plugins one name) is an error naming both plugins: nothing is overridden silently."""
    found: dict = {}
    owners: dict[str, str] = {}
    for impl in getattr(get_plugin_manager().hook, hook_name).get_hookimpls():  # in registration order

        def register(name_or_spec, factory=None, plugin=impl.plugin_name):
            key = name_or_spec.name if isinstance(name_or_spec, FilterSpec) else name_or_spec
            if key in owners:
                raise SelfSpecError(
                    f"{hook_name.removeprefix('register_')[:-1]} {key!r} is registered by two plugins: "
                    f"{owners[key]} and {plugin}; rename one of them"
                )
            found[key], owners[key] = (name_or_spec if factory is None else factory), plugin

        impl.function(register=register)
    return found


def backends() -> dict:
    return _collect("register_backends")


def retrievers() -> dict:
    return _collect("register_retrievers")


def filters() -> dict[str, FilterSpec]:
    return _collect("register_filters")


def task_loaders() -> dict:
    return _collect("register_tasks")


def factory(kind: str, name: str, available: dict):
    if name not in available:
        raise SelfSpecError(f"selfspec.{kind}: unknown {kind} {name!r} (available: {', '.join(sorted(available))})")
    return available[name]


def require(factory, what: str) -> None:
    """A registered factory's `requires` ({module: how to install it}): every module importable, or a SelfSpecError
    that says how to install the missing one, before any work starts."""
    import importlib.util

    for module, hint in ability(factory, "requires").items():
        if importlib.util.find_spec(module) is None:
            raise SelfSpecError(f"{what} needs the {module!r} package, which is not installed: {hint}")


def backend(name: str):
    """The registered backend factory (class) called `name`; an unknown name is an error listing the others."""
    return factory("backend", name, backends())


def backend_settings(config) -> dict:
    """What the chosen backend's factory receives from a `selfspec:` block (backends.base.backend_options: the
    backend decides, and checks them against its own options model)."""
    return backend_options(config.backend, backend(config.backend), config)


def option_blocks() -> dict:
    """The `selfspec:` keys that registered backends own ({key: factory}; `vllm`, `ray`), beside the chosen
    backend's `backend_options`."""
    found = {}
    for factory in backends().values():
        key = ability(factory, "options_key")
        if key != "backend_options":
            found.setdefault(key, factory)
    return found


def make_backend(name: str, model: str, options: dict):
    return backend(name)(model, options)


def make_retriever(name: str, docs: list[dict], cache_dir):
    return factory("retriever", name, retrievers())(docs, cache_dir)
