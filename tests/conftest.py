import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

# The project runs offline: nothing may come from a model hub.
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "AXOLOTL_DO_NOT_TRACK": "1",
    "WANDB_MODE": "disabled",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(key, value)
# selfspec's per-user cache (weight hashes) goes to a folder of this test session, not the user's home.
import tempfile  # noqa: E402

os.environ["SELFSPEC_CACHE"] = tempfile.mkdtemp(prefix="selfspec-cache-")
# Some of Axolotl's imports call colorama.init(), which wraps pytest's captured stderr; once pytest
# closes that stream, every later log line fails ("I/O operation on closed file"). Colour is cosmetic.
import colorama  # noqa: E402

colorama.init = lambda *args, **kwargs: None
# rouge_score (the eval's metrics) imports absl, whose logging handler keeps the sys.stderr of its import: in a test,
# pytest's capture file. Axolotl's logging setup closes every handler, and absl's closes that file unless it is the
# sys.stderr of the moment; later tests then find pytest's capture closed ("lost sys.stderr"). Its stream is the
# process's own stderr instead, which it never closes.
import absl.logging  # noqa: E402

absl.logging.get_absl_handler().python_handler.setStream(sys.__stderr__)

# `axolotl train` runs `accelerate launch`, which must be on PATH.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


BENCH = Path(os.environ.get("SELFSPEC_BENCHMARKS", ROOT.parent / "shared" / "benchmarks"))


@pytest.fixture
def bench() -> Path:
    """../shared/benchmarks (public data, read in place). A checkout without it skips the test; CI (CI=true)
    always has it, so there a missing folder fails the test instead of hiding it."""
    if not BENCH.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{BENCH} is missing, and CI=true: the benchmarks must be beside the checkout")
        pytest.skip("../shared/benchmarks is not beside this checkout")
    return BENCH


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    from tiny_model import tiny_model_dir

    return tiny_model_dir()


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    """The packaged SmolLM2-135M-Instruct, converted as `selfspec fetch-demo-model` does (once per session)."""
    from selfspec_plugin.demo_model import fetch_demo_model

    return fetch_demo_model(tmp_path_factory.mktemp("demo") / "smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gemma_model(tmp_path_factory) -> Path:
    """The packaged Gemma-3-270M (a base model), converted as `selfspec fetch-demo-model gemma-3-270m` does (once per
    session)."""
    from selfspec_plugin.demo_model import fetch_demo_model

    return fetch_demo_model(tmp_path_factory.mktemp("demo") / "gemma-3-270m", name="gemma-3-270m")


@pytest.fixture
def write_seeds(tmp_path):
    def write(lines: list[str], name: str = "seeds.jsonl") -> Path:
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write
