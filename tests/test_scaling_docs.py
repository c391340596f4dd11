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


def test_the_page_has_the_examples():
    text = "\n".join(BLOCKS)
    for needle in (
        "tensor_parallel_size",
        "deepspeed:",
        "fsdp_config:",
        "distributed_executor_backend: ray",
        "backend: ray",
    ):
        assert needle in text


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
