"""`stop_at_quota`: the brainstorming round that reaches `num_instructions` stops once its finished completions have
made that many instructions (docs/benchmarks.md, "B7 and issue 31: stopping the last round at the quota"); and
`rounds_per_call`: several rounds generated as one stream, the next round's requests taking the places of those that
finish.

The pipeline's side runs on scripted backends that declare `stops_early` and `refills` (registered through the hook
like any third-party one); the engine's side, that vLLM's step loop gives the same outputs as `LLM.generate`, keeps
its window and stops where it is told, is in test_engine.py (on the packaged SmolLM2)."""

import heapq
import json

import pytest
from test_pipeline import job, model_dir, novel  # noqa: F401  (model_dir: a fixture)

from selfspec_plugin import hookimpl, registry
from selfspec_plugin.backends import Completion
from selfspec_plugin.rundirs import identity, run_key
from selfspec_plugin.runner import generate


class Stopping:
    """Brainstorm prompts get one numbered item each; prompt i decodes 10 + (7 * i) % 23 tokens, so they finish
    out of prompt order; `enough` is asked as they finish, and those it stops come back as "abort" with the tokens
    they had when it said so. With a `window` (a backend that `refills`) prompt i starts when one of the window's
    places frees up, and one stopped before it started has no text and 0 tokens. Response prompts get an answer.
    The class is the factory, so the run key reads its abilities as it reads vLLM's."""

    name = "stopping"
    chat_capable = False
    stops_early = True
    made: list = []

    def __init__(self, model, options):
        self.calls, self.windows = [], []
        Stopping.made.append(self)

    def generate(self, prompts, sampling, mode, enough=None, window=None):
        self.calls.append([p.id for p in prompts])
        self.windows.append(window)
        if not prompts[0].prefix:  # answers
            return [Completion(f"Answer {novel(p.id, 3)}", "stop", 5) for p in prompts]
        free, start, end = [0] * (window or len(prompts)), {}, {}
        for i in range(len(prompts)):  # in prompt order, each in the first place to free up
            start[i] = heapq.heappop(free)
            end[i] = start[i] + 10 + (7 * i) % 23
            heapq.heappush(free, end[i])
        text = {i: f" Explain {novel(p.id, 6)}.\n4. Input:\n{novel(p.id + 'i', 4)}\n" for i, p in enumerate(prompts)}
        done, at = {}, None
        for step in sorted(set(end.values())):
            done.update({i: Completion(text[i], "stop", end[i] - start[i]) for i in end if end[i] == step})
            if enough is not None and len(done) < len(prompts) and enough(dict(done)):
                at = step
                break
        ran = {i: max(0, at - start[i]) for i in start if i not in done} if at is not None else {}
        return [done.get(i) or Completion(text[i][: ran[i]], "abort", ran[i]) for i in range(len(prompts))]

    def close(self):
        pass


class Refilling(Stopping):
    name = "refilling"
    refills = True


@pytest.fixture
def stopping():
    class Registration:
        @hookimpl
        def register_backends(self, register):
            register("stopping", Stopping)
            register("refilling", Refilling)

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


def test_rounds_per_call_streams_a_calls_rounds_and_resumes_a_call_whole(stopping, model_dir, tmp_path):
    """Rounds of 8, 3 to a call: the first call sends 24 prompts through a window of 8; it keeps 24 of the 40
    instructions, so the second is sized to the 16 missing (+25 %: 20 prompts, rounds of 8, 8 and 4) and stops at the
    quota, the prompts it never started costing nothing. Every round has its own file; a resumed run reads the calls
    back and generates nothing."""
    settings = {"backend": "refilling", "num_instructions": 40, "prompts_per_round": 8, "rounds_per_call": 3}
    run = generate(job(model_dir, tmp_path, **settings, instruction_items=1), progress=False)
    (backend,) = stopping
    brainstorms = [c for c in backend.calls if all(i.count("-") == 1 for i in c)]
    assert [len(c) for c in brainstorms] == [24, 20] and backend.windows[:2] == [8, 8]
    assert brainstorms[0][8] == "r1-p0" and brainstorms[1][-1] == "r5-p3"
    files = sorted((run / "instructions").glob("round-*.jsonl"))
    assert [len(rows(f)) for f in files] == [8, 8, 8, 8, 8, 4]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["counts"]["instructions_kept"] == 40
    stopped = [r for f in files[3:] for r in rows(f) if r["finish_reason"] == "abort"]
    assert len(stopped) == 4 and all(r["tokens"] > 0 for r in stopped)  # a window of 8: all 20 had started
    assert manifest["stages"]["instructions"] | {"tokens": 0, "seconds": 0} == {
        "rounds": 6,
        "calls": 2,
        "prompts": 44,
        "stopped": 4,
        "tokens": 0,
        "resumed_tokens": 0,
        "seconds": 0,
        "shortened": 0,
    }

    data = (run / "data.jsonl").read_bytes()
    for name in ("manifest.json", "data.jsonl", "instructions.jsonl"):
        (run / name).unlink()
    assert generate(job(model_dir, tmp_path, **settings, instruction_items=1), progress=False) == run
    assert all(i.count("-") == 2 for c in stopping[1].calls for i in c)  # answers only
    assert (run / "data.jsonl").read_bytes() == data


def test_a_round_per_call_is_the_old_run_and_rounds_per_call_is_keyed_where_it_acts(stopping, model_dir, tmp_path):
    settings = {"num_instructions": 40, "prompts_per_round": 8, "instruction_items": 1}
    one = generate(job(model_dir, tmp_path, backend="refilling", **settings, rounds_per_call=1), progress=False)
    assert [len(c) for c in stopping[0].calls if all(i.count("-") == 1 for i in c)] == [8] * 5
    assert set(stopping[0].windows) == {None}  # a round per call: no window, the engine's own batching

    def key_settings(**extra):
        return job(model_dir, tmp_path, **extra).inputs["settings"]

    assert key_settings(backend="refilling")["rounds_per_call"] == 8
    assert (
        "rounds_per_call"
        not in identity({"settings": key_settings(backend="refilling", rounds_per_call=1)})["settings"]
    )
    assert one.name == run_key(job(model_dir, tmp_path, backend="refilling", **settings, rounds_per_call=1).inputs)
    assert "rounds_per_call" not in key_settings(backend="refilling", num_triplets=5, num_instructions=5000)
    assert "rounds_per_call" not in key_settings(backend="stopping")  # a backend that cannot refill: no say


def test_a_call_larger_than_the_quota_needs_stops_before_starting_the_rest(stopping, model_dir, tmp_path, capsys):
    """The demo's case: 10 instructions, a first call of 5 rounds of 4 (nothing known of the yield yet); the call
    stops at the quota with a few requests running and the rest never started (no text, 0 tokens, not prompted)."""
    settings = {"backend": "refilling", "num_instructions": 10, "prompts_per_round": 4, "rounds_per_call": 5}
    run = generate(job(model_dir, tmp_path, **settings, instruction_items=1), progress=False)
    assert [len(c) for c in stopping[0].calls][:1] == [20] and stopping[0].windows[0] == 4
    brainstormed = [r for f in sorted((run / "instructions").glob("round-*.jsonl")) for r in rows(f)]
    assert len(brainstormed) == 20
    unstarted = [r for r in brainstormed if r["finish_reason"] == "abort" and r["tokens"] == 0]
    stopped = [r for r in brainstormed if r["finish_reason"] == "abort" and r["tokens"] > 0]
    assert len(brainstormed) - len(unstarted) - len(stopped) == 10 and unstarted and stopped
    assert all(r["text"] == "" for r in unstarted)
    instructions = json.loads((run / "manifest.json").read_text())["stages"]["instructions"]
    assert instructions["stopped"] == len(stopped) and instructions["prompts"] == 20 - len(unstarted)
    summary = capsys.readouterr().err
    assert f"5 rounds in 1 engine call, {20 - len(unstarted)} prompts started ({len(stopped)} stopped" in summary
