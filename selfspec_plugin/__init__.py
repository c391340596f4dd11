"""selfspec: Self-Specialization (Kang et al., 2023) as an Axolotl plugin.

    plugins: [selfspec_plugin.SelfSpecPlugin]
    selfspec: {seeds: seeds/biomed.jsonl, num_instructions: 5000}

`SelfSpecPlugin` is imported lazily (it pulls in Axolotl and torch), so the CLI and config validation
stay fast.
"""

from .config import SelfSpecConfig
from .errors import SelfSpecError
from .hookspecs import hookimpl

__all__ = ["SelfSpecConfig", "SelfSpecError", "SelfSpecPlugin", "hookimpl"]


def __getattr__(name):
    if name == "SelfSpecPlugin":
        from .axolotl_plugin import SelfSpecPlugin

        return SelfSpecPlugin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
