"""The house is one-way: the import graph of every module of selfspec_plugin, imports inside functions included, has
no circle and no import that points up a layer (docs/architecture.md draws the layers)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "selfspec_plugin"

# Bottom to top; a module may import its own layer (without a circle) and the ones below, never one above.
LAYERS = {
    "leaves": [
        "errors",
        "fileio",
        "filters",
        "metrics",
        "prompts",
        "yamltext",
        "quiet",
        "gguf_tokenizer",
        "demo_model",
        "corpus",
        "plots",
        "loops",
        "loss_logits",
    ],
    "contract": ["hookspecs", "dataset", "provenance"],
    "plumbing": [
        "backends",
        "backends.base",
        "backends.vllm",
        "backends.vllm_loops",
        "backends.vllm_sampler",
        "backends.nucleus",
        "backends.ray_replicas",
    ]
    + ["backends.openai", "backends.transformers", "config", "registry"],
    "pipeline": ["seeds", "retrieval", "pipeline", "heldout"],
    "funnel": ["funnel"],
    "run": ["rundirs", "runner"],
    "report": ["report"],
    "eval": ["eval", "eval.run", "eval.scoring", "eval.tasks"],
    "workflows": ["iterate", "recipe", "trl_export"],
    "adapters": ["cli", "axolotl_plugin", "", "builtins"]
    + [f"builtins.{name}" for name in ("backends", "retrievers", "filters", "pipeline", "tasks")],
}
LEVEL = {module: i for i, layer in enumerate(LAYERS.values()) for module in layer}
WORKFLOWS = set(LAYERS["workflows"])
PIPELINE = set(LAYERS["pipeline"])
CONTRACT = {"hookspecs", "dataset"}
BACKENDS = {m for m in LEVEL if m.startswith("backends")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str], tree: ast.AST | None = None) -> set[str]:
    """The package's modules that `name` imports anywhere in its file (module level or inside a function), or in
    `tree`, a part of it."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    found = set()
    for node in ast.walk(tree or ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name.split(".", 1)[1] if "." in a.name else "" for a in node.names]
            targets = [t for t, a in zip(targets, node.names) if a.name.split(".")[0] == "selfspec_plugin"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] + ([node.module] if node.module else [])
            elif (node.module or "").split(".")[0] == "selfspec_plugin":
                base = node.module.split(".")[1:]
            else:
                continue
            stem = ".".join(base)
            targets = [
                f"{stem}.{a.name}".strip(".") if f"{stem}.{a.name}".strip(".") in known else stem for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target not in known:  # a name inside a module: the module
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def circle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph, as the modules along it, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_module_has_a_layer():
    assert sorted(set(modules()) - set(LEVEL)) == [], "a new module: give it a layer here and in docs/architecture.md"


def test_the_graph_sees_imports_inside_functions():
    # (the check would be blind without it: runner's old `from .recipe import provenance` sat inside make_job)
    edges = graph()
    assert "axolotl_plugin" in edges[""]  # `from .axolotl_plugin import SelfSpecPlugin` inside __getattr__
    assert "eval" in edges["cli"]


# A project module is imported at the top of the file, where the reader and the graph see it; inside a function
# only to keep an optional heavy dependency off the start of `selfspec` (its --help, config validation). Each entry:
# (importing module, imported module) -> why.
LAZY = {
    ("", "axolotl_plugin"): "SelfSpecPlugin pulls in Axolotl and torch (seconds): `import selfspec_plugin` stays fast",
}


def function_level(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `name` imports inside a function (or a method, or a lambda)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
    inner = [n for f in ast.walk(tree) if isinstance(f, functions) for n in ast.walk(f)]
    nested = ast.Module(body=[n for n in inner if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    return imported(name, path, known, nested)


def test_project_modules_are_imported_at_module_level():
    found = modules()
    lazy = {(m, d) for m, path in found.items() for d in function_level(m, path, set(found))}
    assert sorted(f"{m or 'selfspec_plugin'} -> {d}" for m, d in lazy - set(LAZY)) == [], (
        "import it at the top of the module (or, for a heavy optional dependency, add it to LAZY with the reason)"
    )
    assert sorted(set(LAZY) - lazy) == []  # (an entry no longer needed goes)


def test_no_import_circle():
    assert circle(graph()) is None, f"an import circle: {' -> '.join(circle(graph()))}"


def test_a_circle_is_found():
    assert circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert circle({"a": {"b"}, "b": set()}) is None


def upward(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {d}" for m, deps in edges.items() for d in deps if LEVEL[d] > LEVEL[m])


def test_imports_point_down_the_layers():
    assert upward(graph()) == []
    assert upward({"runner": {"report"}, "report": set()}) == ["runner -> report"]  # (the check can fail)


@pytest.mark.parametrize(
    "rule, modules, forbidden",
    [
        ("nothing below the workflows imports them", set(LEVEL) - WORKFLOWS - set(LAYERS["adapters"]), WORKFLOWS),
        (
            "the run layer imports neither the eval nor the report",
            {"rundirs", "runner"},
            set(LAYERS["eval"]) | {"report"},
        ),
        (
            "the pipeline imports neither the run layer nor the workflows",
            PIPELINE,
            set(LAYERS["run"]) | WORKFLOWS,
        ),
        (
            "the contract imports no implementation, no run folder and no report",
            CONTRACT,
            set(LEVEL) - set(LAYERS["leaves"]) - CONTRACT,
        ),
        ("config imports no backend", {"config"}, BACKENDS),
        ("no backend imports config", BACKENDS, {"config"}),
        ("the eval imports nothing above it", set(LAYERS["eval"]), WORKFLOWS | set(LAYERS["adapters"])),
    ],
)
def test_layer_rule(rule, modules, forbidden):
    edges = graph()
    broken = sorted(f"{m} -> {d}" for m in modules for d in edges[m] & forbidden)
    assert broken == [], rule
