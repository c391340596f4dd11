"""Every config example in docs/scaling.md is a complete Axolotl config that passes Axolotl's own validation
with the plugin loaded (on a 4-GPU sm_90 machine's capabilities), keeps every key it sets, and has a valid
`selfspec:` block."""

import copy
import re

import pytest
import yaml
from conftest import ROOT

from selfspec_plugin.config import SelfSpecConfig

DOC = ROOT / "docs" / "scaling.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
GPUS = (
    {"bf16": True, "fp8": False, "tf32": True, "n_gpu": 4, "compute_capability": "sm_90"},
    {"torch_version": "2.13.0"},
)


def examples_of(blocks: list[str]) -> set[str]:
    """Which of the page's promised setups the config blocks hold, read as YAML (a substring search would take
    `distributed_executor_backend: ray` for `backend: ray`, or a comment for a key)."""
    found = set()
    for raw in map(yaml.safe_load, blocks):
        block = raw.get("selfspec") or {}
        vllm = block.get("vllm") or {}
        found |= {key for key in ("deepspeed", "fsdp_config") if raw.get(key)}
        found |= {"tensor_parallel_size"} if (vllm.get("tensor_parallel_size") or 1) > 1 else set()
        found |= {"ray engine"} if vllm.get("distributed_executor_backend") == "ray" else set()
        found |= {"ray replicas"} if block.get("backend") == "ray" else set()
    return found


def test_the_page_has_the_examples():
    promised = {"deepspeed", "fsdp_config", "tensor_parallel_size", "ray engine", "ray replicas"}
    assert examples_of(BLOCKS) == promised
    # (the check can fail: a page whose only Ray example is the multi-node engine lacks the replicas)
    engine_only = [b for b in BLOCKS if "ray replicas" not in examples_of([b])]
    assert examples_of(engine_only) == promised - {"ray replicas"}


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: re.search(r"output_dir: (\S+)", b).group(1))
def test_example_validates_with_axolotl(block, monkeypatch):
    from axolotl.cli.config import prepare_plugins
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    monkeypatch.chdir(ROOT)
    raw = yaml.safe_load(block)
    cfg = DictDefault(copy.deepcopy(raw))
    prepare_plugins(cfg)
    validated = validate_config(cfg, *GPUS)
    assert sorted(set(raw) - set(validated)) == []
    assert (ROOT / "recipes" / SelfSpecConfig(**raw["selfspec"]).seeds).is_file()  # (as a recipe in recipes/)
