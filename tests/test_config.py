import pytest
from pydantic import ValidationError

from selfspec_plugin.config import SelfSpecConfig


def test_paper_defaults():
    c = SelfSpecConfig(seeds="s.jsonl")
    assert (c.num_instructions, c.instruction_demos, c.response_demos) == (5000, 3, 5)
    assert (c.temperature, c.top_p, c.response_temperature) == (1.0, 0.98, 0.0)
    assert (c.rouge_threshold, c.min_words, c.max_words) == (0.7, 4, 150)
    assert "flowchart" in c.blacklist and c.backend == "vllm"


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"num_instructionz": 5}, "num_instructionz"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"rouge_threshold": 0}, "rouge_threshold"),
        ({"rouge_threshold": 1.2}, "rouge_threshold"),
        ({"num_instructions": 0}, "num_instructions"),
    ],
)
def test_bad_keys_and_values_name_the_field(extra, field):
    with pytest.raises(ValidationError) as err:
        SelfSpecConfig(seeds="s.jsonl", **extra)
    locs = [".".join(map(str, e["loc"])) for e in err.value.errors()]
    assert field in locs


@pytest.mark.parametrize(
    "extra, line",
    [
        ({"vllm": {"max_model_len": 512, "tensor_paralel_size": 2}}, "selfspec.vllm.tensor_paralel_size: unknown key"),
        ({"vllm": {"gpu_memory_utilization": 2}}, "selfspec.vllm.gpu_memory_utilization: Input should be less"),
        ({"backend": "openai", "ray": {"replicas": 0}}, "selfspec.ray.replicas: Input should be greater than 0"),
    ],
)
def test_a_backends_own_block_is_checked_by_its_options_model_whatever_the_backend(extra, line):
    # The `vllm:` and `ray:` blocks belong to their backends (config.py imports none): the block's check asks them.
    from selfspec_plugin.recipe import block_problems

    problems = block_problems({"seeds": "s.jsonl", **extra})
    assert len(problems) == 1 and problems[0].startswith(line), problems


def test_seeds_required_and_word_bounds_consistent():
    with pytest.raises(ValidationError, match="seeds"):
        SelfSpecConfig()
    with pytest.raises(ValidationError, match="min_words"):
        SelfSpecConfig(seeds="s", min_words=10, max_words=5)
