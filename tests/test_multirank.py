"""A 2-process launch (`axolotl train --launcher torchrun`, gloo on CPU): every rank calls the plugin's
`load_datasets`; exactly one generates (a file lock), the other waits and reuses the finished run; both
ranks then train on the same data."""

import json

import pytest
from test_e2e import read_jsonl, run, write_recipe

pytestmark = pytest.mark.slow


def test_two_ranks_generate_once_and_both_train(tiny_model, tmp_path):
    recipe = write_recipe(tmp_path / "recipe.yml", tiny_model)
    recipe.write_text(
        recipe.read_text()
        .replace("eval_after_train: true", "eval_after_train: false")
        .replace("max_steps: 3", "max_steps: 1")
        .replace("num_instructions: 12", "num_instructions: 6")
    )
    proc = run(["axolotl", "train", str(recipe), "--launcher", "torchrun", "--", "--nproc_per_node", "2"], tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]

    runs = [p for p in (tmp_path / "out" / "selfspec").iterdir() if p.is_dir()]
    assert len(runs) == 1
    manifest = json.loads((runs[0] / "manifest.json").read_text())
    data = read_jsonl(runs[0] / "data.jsonl")
    assert manifest["counts"]["triplets"] == len(data) > 0
    # one generation: one end-of-run funnel; the other rank reused the finished run
    assert output.count(f"triplets       {len(data)} in data.jsonl") == 1
    assert output.count("reusing cached run") == 1
    for rank in (0, 1):
        assert f"selfspec: rank {rank} of 2: training on {runs[0] / 'data.jsonl'}" in output
    assert output.count("'train_loss'") == 2  # each rank finished its training loop
    assert (tmp_path / "out" / "adapter_model.safetensors").stat().st_size > 0
