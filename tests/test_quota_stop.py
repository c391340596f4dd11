"""`stop_at_quota`: the brainstorming round that reaches `num_instructions` stops once its finished completions have
made that many instructions (docs/benchmarks.md, "B7 and issue 31: stopping the last round at the quota").

The pipeline's side runs on a scripted backend that declares `stops_early` (registered through the hook like any
third-party one); the engine's side, that vLLM's step loop gives the same outputs as `LLM.generate` and stops where
it is told, is in test_engine.py (on the packaged SmolLM2)."""

import json

import pytest
from test_pipeline import job, model_dir, novel  # noqa: F401  (model_dir: a fixture)

from selfspec_plugin import hookimpl, registry
from selfspec_plugin.backends import Completion
from selfspec_plugin.rundirs import identity, run_key
from selfspec_plugin.runner import generate


class Stopping:
    """Brainstorm prompts get one numbered item each; prompt i finishes after 10 + (7 * i) % 23 tokens, so they
    finish out of prompt order; `enough` is asked as they finish, and those it stops come back as "abort" with the
    tokens they had when it said so. Response prompts get an answer. The class is the factory, so the run key reads
    its `stops_early` as it reads vLLM's."""

    name = "stopping"
    chat_capable = False
    stops_early = True
    made: list = []

    def __init__(self, model, options):
        self.calls = []
        Stopping.made.append(self)

    def generate(self, prompts, sampling, mode, enough=None):
        self.calls.append([p.id for p in prompts])
        if not prompts[0].prefix:  # answers
            return [Completion(f"Answer {novel(p.id, 3)}", "stop", 5) for p in prompts]
        length = {i: 10 + (7 * i) % 23 for i in range(len(prompts))}
        text = {i: f" Explain {novel(p.id, 6)}.\n4. Input:\n{novel(p.id + 'i', 4)}\n" for i, p in enumerate(prompts)}
        done, at = {}, None
        for step in sorted(set(length.values())):
            done.update({i: Completion(text[i], "stop", n) for i, n in length.items() if n == step})
            if enough is not None and len(done) < len(prompts) and enough(dict(done)):
                at = step
                break
        return [done.get(i) or Completion(text[i][:at], "abort", at) for i in range(len(prompts))]

    def close(self):
        pass


@pytest.fixture
def stopping():
    class Registration:
        @hookimpl
        def register_backends(self, register):
            register("stopping", Stopping)

    reg = Registration()
    Stopping.made.clear()
    registry.get_plugin_manager().register(reg)
    yield Stopping.made
    registry.get_plugin_manager().unregister(reg)


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_round_that_reaches_the_quota_stops_there_and_counts_what_it_stopped(stopping, model_dir, tmp_path):
    settings = {"backend": "stopping", "num_instructions": 10, "prompts_per_round": 16, "instruction_items": 1}
    run = generate(job(model_dir, tmp_path / "a", **settings), progress=False)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["counts"]["instructions_kept"] == 10 and manifest["counts"]["triplets"] == 10
    assert manifest["stages"]["instructions"]["stopped"] == 6
    stopped = [r for r in rows(run / "instructions" / "round-00000.jsonl") if r["finish_reason"] == "abort"]
    assert len(stopped) == 6 and all(r["tokens"] > 0 for r in stopped)
    # the kept ones are the prompts that finished first, not the first in prompt order
    finished = sorted(range(16), key=lambda i: (10 + (7 * i) % 23, i))[:10]
    assert sorted(k["id"] for k in rows(run / "instructions.jsonl")) == sorted(f"r0-p{i}-0" for i in finished)
    # every token generated is counted, the stopped requests' too
    assert manifest["stages"]["instructions"]["tokens"] == sum(
        r["tokens"] for r in rows(run / "instructions" / "round-00000.jsonl")
    )
    assert not any(r.get("id", "").startswith(tuple(r["id"] for r in stopped)) for r in rows(run / "rejected.jsonl"))

    whole = generate(job(model_dir, tmp_path / "b", **settings, stop_at_quota=False), progress=False)
    manifest = json.loads((whole / "manifest.json").read_text())
    assert manifest["counts"]["instructions_kept"] == 16 and manifest["stages"]["instructions"]["stopped"] == 0
    assert whole.name != run.name  # another run key


def test_a_resumed_run_reads_the_stopped_round_back_and_a_larger_one_finishes_its_requests(
    stopping, model_dir, tmp_path
):
    settings = {"backend": "stopping", "num_instructions": 10, "prompts_per_round": 16, "instruction_items": 1}
    run = generate(job(model_dir, tmp_path, **settings), progress=False)
    data = (run / "data.jsonl").read_bytes()
    for name in ("manifest.json", "data.jsonl", "responses/chunk-00000.jsonl"):
        (run / name).unlink()
    assert generate(job(model_dir, tmp_path, **settings), progress=False) == run
    assert all("-" in i[len("r0-p") :] for c in stopping[1].calls for i in c)  # answers only: the round was read back
    assert (run / "data.jsonl").read_bytes() == data

    larger = generate(job(model_dir, tmp_path, **{**settings, "num_instructions": 14}), progress=False)
    brainstormed = [i for c in stopping[2].calls for i in c if i.count("-") == 1]
    assert len(brainstormed) == 6  # the 6 stopped requests of round 0, generated again and not stopped this time
    assert json.loads((larger / "manifest.json").read_text())["counts"]["instructions_kept"] == 14


def test_stop_at_quota_is_in_the_key_of_num_instructions_runs_whose_backend_can_stop(stopping, model_dir, tmp_path):
    """On by default, it changes what a run keeps (and, through the answers' batch, their bf16 numbers): a run that
    can stop gets a key of its own, false finds the runs made before the setting; runs it cannot change keep theirs."""
    from selfspec_plugin.config import SelfSpecConfig

    base = {"model": {"sha256": "m"}}
    settings = SelfSpecConfig(seeds="s.jsonl").model_dump()
    assert settings["stop_at_quota"] is True
    assert run_key({**base, "settings": settings}) != run_key(
        {**base, "settings": {**settings, "stop_at_quota": False}}
    )
    assert "stop_at_quota" not in identity({**base, "settings": {**settings, "stop_at_quota": False}})["settings"]

    def key_settings(**extra):
        return job(model_dir, tmp_path, **extra).inputs["settings"]

    assert key_settings(backend="stopping")["stop_at_quota"] is True
    assert "stop_at_quota" not in key_settings(backend="stopping", num_triplets=5, num_instructions=5000)
    assert "stop_at_quota" not in key_settings(backend="scripted_absent")  # a backend that cannot stop: no say
