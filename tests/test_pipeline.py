"""The pipeline's own logic (rounds, filters, chunks, resume, outputs), driven by a scripted backend
registered through the `register_backends` hook like any third-party backend. The real engines are
exercised in test_e2e.py and test_backends.py."""

import hashlib
import json
from pathlib import Path

import pytest
from conftest import ROOT

from selfspec_plugin import funnel, hookimpl, registry, report
from selfspec_plugin.backends import Completion
from selfspec_plugin.cli import main
from selfspec_plugin.errors import SelfSpecError
from selfspec_plugin.pipeline import fit_prompts, round_size
from selfspec_plugin.prompts import Prompt
from selfspec_plugin.runner import generate, make_job

WORDS = "gene protein tumour kinase receptor ligand enzyme pathway cell tissue drug dose trial cohort marker".split()


def novel(key: str, n: int) -> str:
    digest = hashlib.sha256(key.encode()).digest()
    return " ".join(WORDS[b % len(WORDS)] + str(b) for b in digest[:n])


class Scripted:
    """Brainstorm prompts get two numbered items (the second one cut off), response prompts an answer."""

    name = "scripted"
    chat_capable = False

    def __init__(self, model, options):
        self.calls, self.requests = [], []
        self.mode = options.get("mode", "good")
        self.context_tokens = options.get("context")  # with prompt_tokens: the pipeline fits prompts to it
        self.constrains_decoding = options.get("grammar", False)

    def prompt_tokens(self, prompts, mode):  # a response prompt's words; brainstorm prompts always fit
        return [0 if p.prefix else len(p.text.split()) for p in prompts]

    def generate(self, prompts, sampling, mode):
        self.calls.append([p.id for p in prompts])
        self.requests.append((prompts, sampling))
        self.texts = [p.text for p in prompts]
        out = []
        for p in prompts:
            if p.prefix:  # brainstorming
                text = (
                    ""
                    if self.mode == "empty"
                    else (f" Explain {novel(p.id, 6)}.\n4. Input:\n{novel(p.id + 'i', 4)}\n###\n5. Instruction: Cut")
                )
                out.append(Completion(text, "stop" if self.mode == "empty" else "length", 20))
            elif self.mode == "same":
                out.append(Completion("2024-03-01", "stop", 5))  # one answer to everything
            elif self.mode == "labels" and hashlib.sha256(p.id.encode()).digest()[0] % 3 == 0:
                out.append(Completion("no", "stop", 1))  # a label nobody asked for: unasked_label drops it
            else:
                out.append(Completion(f"Answer {novel(p.id, 3)}", "stop", 5))
        return out

    def close(self):
        pass


class Registration:
    def __init__(self):
        self.instances = []

    @hookimpl
    def register_backends(self, register):
        def factory(model, options):
            self.instances.append(Scripted(model, options))
            return self.instances[-1]

        register("scripted", factory)


@pytest.fixture
def scripted():
    reg = Registration()
    registry.get_plugin_manager().register(reg)
    yield reg
    registry.get_plugin_manager().unregister(reg)


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


def job(model_dir, out, **settings):
    """A small generation job over the test seeds (scripted backend, 10 instructions) with `settings` on top."""
    small = {"backend": "scripted", "num_instructions": 10, "prompts_per_round": 4, "chunk_size": 3}
    return make_job(
        {"seeds": str(ROOT / "tests" / "data" / "seeds.jsonl"), **small, **settings}, str(model_dir), str(out)
    )


def test_rounds_filters_chunks_and_outputs(scripted, model_dir, tmp_path, capsys):
    run_dir = generate(job(model_dir, tmp_path, messages=True), progress=False)
    backend = scripted.instances[0]
    # rounds of 4, 4, then 3 (2 missing at 1 per prompt, +25 %), then every kept instruction's answer in chunks of 3
    assert [len(c) for c in backend.calls] == [4, 4, 3, 3, 3, 3, 2]
    data = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
    rejected = [json.loads(line) for line in (run_dir / "rejected.jsonl").read_text().splitlines()]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # 11 prompts, each one complete item and one cut off: the last round's passing items are all kept and
    # answered (as Alpaca keeps its last batch), 10 triplets, the passing answer past the quota recorded
    assert len(data) == 10 and [r["rejected"] for r in rejected].count("over_quota") == 1
    assert manifest["counts"] == {
        "instructions_kept": 11,
        "triplets": 10,
        "rejected": {"over_quota": 1, "truncated": 11},
        "requested": 10,
        "requested_unit": "instructions",
        "seeds": 12,
    }
    over = [r for r in rejected if r["rejected"] == "over_quota"]  # nothing vanishes
    assert [(r["id"], r["stage"], bool(r["output"])) for r in over] == [("r2-p2-0", "response", True)]
    assert manifest["stages"]["instructions"]["prompts"] == 11
    assert data[0]["messages"][0] == {"role": "user", "content": f"{data[0]['instruction']}\n\n{data[0]['input']}"}
    assert data[0]["messages"][1] == {"role": "assistant", "content": data[0]["output"]}
    assert "10 (instruction, input, output) triplets" in (run_dir / "README.md").read_text()
    assert "triplets       10 in data.jsonl" in capsys.readouterr().err

    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(run_dir / "data.jsonl"), split="train")
    assert ds.num_rows == 10 and {"instruction", "input", "output"} <= set(ds.column_names)

    assert main(["inspect", str(run_dir), "--samples", "2"]) == 0
    shown = capsys.readouterr().out
    assert "truncated" in shown and "2 random kept triplets" in shown


def test_the_papers_sampling_settings_reach_the_backend(scripted, model_dir, tmp_path):
    """Paper defaults, untouched by the job: brainstorming with 3 seed demos at T 1.0, top-p 0.98; responses greedy
    with 5 seed demos. (test_backends checks that the vLLM engine receives these settings as given.)"""
    generate(job(model_dir, tmp_path), progress=False)
    requests = scripted.instances[0].requests
    brainstorms = [(p, s) for prompts, s in requests for p in prompts if p.prefix]
    responses = [(p, s) for prompts, s in requests for p in prompts if not p.prefix]
    assert len(brainstorms) == 11 and len(responses) == 11
    for p, s in brainstorms:
        assert (s.temperature, s.top_p, s.max_tokens, s.seed) == (1.0, 0.98, 320, 42)
        assert p.messages[0]["content"].count(". Instruction:") == 3 and p.prefix.endswith("4. Instruction:")
        assert p.stop == ("6. Instruction", "7. Instruction", "Output:")  # two items per generation
    for p, s in responses:
        assert (s.temperature, s.max_tokens, s.seed) == (0.0, 512, 42)
        assert [m["role"] for m in p.messages] == ["system"] + ["user", "assistant"] * 5 + ["user"]
        assert p.text.count("### Response:") == 6 and p.stop == ("###",)


def test_instruction_samples_send_identical_prompts_with_their_own_ids_and_seeds(scripted, model_dir, tmp_path):
    """`instruction_samples: 2`: requests p0 and p1 share p0's draw of demos (one prompt text, computed once by
    the prefix cache), p2 and p3 share p2's; each keeps its own id, so its own sampling seed. With the default 1
    the draws are the ones every earlier run made."""
    from selfspec_plugin.backends import item_seed

    def first_round(out, **settings):
        generate(job(model_dir, out, **settings), progress=False)
        return scripted.instances[-1].requests[0][0]

    alone = first_round(tmp_path / "one")
    shared = first_round(tmp_path / "two", instruction_samples=2)
    assert [p.id for p in shared] == [p.id for p in alone] == ["r0-p0", "r0-p1", "r0-p2", "r0-p3"]
    assert [p.text for p in shared] == [alone[0].text, alone[0].text, alone[2].text, alone[2].text]
    assert len({p.text for p in alone}) == 4
    assert len({item_seed(42, p.id) for p in shared}) == 4


def test_response_samples_share_one_draw_of_demos_across_chunks(scripted, model_dir, tmp_path):
    """`response_samples: 4`: instructions 0-3 are answered with instruction 0's draw of demos, 4-7 with
    instruction 4's, 8-10 with instruction 8's, whichever chunk (of 3) each falls in: identical prompt prefixes
    for vLLM's prefix cache. With the default 1 the draws are the ones every earlier run made."""

    def demos_of_responses(out, **settings):
        generate(job(model_dir, out, **settings), progress=False)
        requests = scripted.instances[-1].requests
        return [p.messages[:-1] for prompts, _ in requests for p in prompts if not p.prefix]

    alone = demos_of_responses(tmp_path / "one")
    shared = demos_of_responses(tmp_path / "four", response_samples=4)
    assert len(shared) == len(alone) == 11
    assert shared == [alone[0]] * 4 + [alone[4]] * 4 + [alone[8]] * 3
    assert len({str(d) for d in alone}) == 11


def test_round_size_shrinks_the_last_round_to_what_the_yield_says_is_missing():
    assert round_size(32, missing=20, kept=0, prompted=0) == 32  # nothing known yet: a full round
    assert round_size(32, missing=8, kept=12, prompted=32) == 27  # 8 at 0.375 per prompt, +25 %
    assert round_size(32, missing=2, kept=30, prompted=32) == 3
    assert round_size(32, missing=400, kept=10, prompted=32) == 32  # never more than prompts_per_round


def test_resume_recomputes_only_missing_chunks(scripted, model_dir, tmp_path):
    run_dir = generate(job(model_dir, tmp_path), progress=False)
    original = (run_dir / "data.jsonl").read_bytes()
    whole = json.loads((run_dir / "manifest.json").read_text())["stages"]
    answers = [json.loads(line) for line in (run_dir / "responses" / "chunk-00002.jsonl").read_text().splitlines()]
    for name in ("manifest.json", "data.jsonl", "responses/chunk-00002.jsonl"):
        (run_dir / name).unlink()
    generate(job(model_dir, tmp_path), progress=False)
    assert scripted.instances[1].calls == [["r1-p2-0", "r1-p3-0", "r2-p0-0"]]  # chunk 2, nothing else
    assert (run_dir / "data.jsonl").read_bytes() == original
    # the resumed run's manifest counts the whole run's tokens, and says which an earlier process generated
    resumed = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert [resumed[s]["tokens"] for s in resumed] == [whole[s]["tokens"] for s in whole]
    assert resumed["instructions"]["resumed_tokens"] == whole["instructions"]["tokens"]  # every round was on disk
    assert resumed["responses"]["resumed_tokens"] == whole["responses"]["tokens"] - sum(a["tokens"] for a in answers)
    assert whole["responses"]["resumed_tokens"] == 0
    generate(job(model_dir, tmp_path), progress=False)  # complete: no backend at all
    assert len(scripted.instances) == 2


def test_another_chunk_size_shares_the_run_and_its_rows_by_prompt_id(scripted, model_dir, tmp_path):
    run_dir = generate(job(model_dir, tmp_path), progress=False)
    original = (run_dir / "data.jsonl").read_bytes()
    (run_dir / "manifest.json").unlink()
    assert generate(job(model_dir, tmp_path, chunk_size=4), progress=False) == run_dir  # chunk_size: not in the key
    # chunks of 4 over the files of chunks of 3 with the same index: only the ids a file lacks are generated
    assert scripted.instances[1].calls == [["r0-p3-0"], ["r1-p2-0", "r1-p3-0"], ["r2-p1-0", "r2-p2-0"]]
    assert (run_dir / "data.jsonl").read_bytes() == original


def test_an_unfinished_run_is_extended_too(scripted, model_dir, tmp_path):
    """A run stopped before its end (no manifest; its inputs.json says what it is) lends its finished rounds and
    chunks to a larger run."""
    small = generate(job(model_dir, tmp_path), progress=False)
    for name in ("manifest.json", "data.jsonl"):
        (small / name).unlink()
    large = generate(job(model_dir, tmp_path, num_instructions=16), progress=False)
    assert json.loads((large / "manifest.json").read_text())["extended_from"] == [small.name]
    assert len([i for c in scripted.instances[1].calls for i in c if i.count("-") == 1]) == 5  # only the new prompts


def test_raising_num_instructions_extends_the_finished_run(scripted, model_dir, tmp_path):
    small = generate(job(model_dir, tmp_path), progress=False)
    large = generate(job(model_dir, tmp_path, num_instructions=16), progress=False)
    assert large != small and json.loads((large / "manifest.json").read_text())["extended_from"] == [small.name]
    # the small run's 11 brainstorm prompts (its last round of 3) and 11 answers are not asked again
    brainstormed = [i for c in scripted.instances[1].calls for i in c if i.count("-") == 1]
    answered = [i for c in scripted.instances[1].calls for i in c if i.count("-") == 2]
    assert brainstormed[0] == "r2-p3" and len(brainstormed) == 5 and len(answered) == 5

    def rows(d):
        return [json.loads(line) for line in (d / "data.jsonl").read_text().splitlines()]

    assert rows(large)[:10] == rows(small) and len(rows(large)) == 16  # the smaller run is a prefix
    assert (small / "instructions" / "round-00002.jsonl").read_text().count("\n") == 3  # its files untouched


def test_num_triplets_brainstorms_until_exactly_that_many_pass_every_filter(scripted, model_dir, tmp_path):
    target = job(model_dir, tmp_path, num_instructions=5000, num_triplets=7, backend_options={"mode": "labels"})
    run_dir = generate(target, progress=False)
    calls = scripted.instances[0].calls
    data = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
    rejected = [json.loads(line) for line in (run_dir / "rejected.jsonl").read_text().splitlines()]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(data) == 7 and manifest["counts"]["requested"] == 7
    assert manifest["counts"]["requested_unit"] == "triplets" and "7 of 7 requested" in funnel.summary(
        manifest, run_dir
    )
    reasons = [r["rejected"] for r in rejected]
    assert "unasked_label:no" in reasons and all(reasons)  # every drop has its reason
    answered = {r["id"] for r in rejected if r["stage"] == "response"} | {r["id"] for r in data}
    kept = [json.loads(line)["id"] for line in (run_dir / "instructions.jsonl").read_text().splitlines()]
    assert answered == set(kept)  # every kept instruction was answered, its answer kept or rejected with a reason
    # the stages alternate: a round of brainstorming, then its instructions' answers, until the target is met
    kinds = ["brainstorm" if c[0].count("-") == 1 else "answer" for c in calls]
    runs = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    assert runs == ["brainstorm", "answer"] * (len(runs) // 2) and len(runs) >= 4
    # resumable: a run killed after its first chunk of answers ends with the same data and the same token counts
    original = (run_dir / "data.jsonl").read_bytes()
    tokens = [manifest["stages"][s]["tokens"] for s in ("instructions", "responses")]
    chunks = [run_dir / "responses" / f"chunk-{c:05d}.jsonl" for c in range(manifest["stages"]["responses"]["chunks"])]
    assert tokens[1] == sum(json.loads(line)["tokens"] for c in chunks for line in c.read_text().splitlines())
    for path in [run_dir / "manifest.json", run_dir / "data.jsonl", *sorted(run_dir.glob("responses/*"))[1:]]:
        path.unlink()
    generate(target, progress=False)
    assert (run_dir / "data.jsonl").read_bytes() == original
    resumed = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert [resumed[s]["tokens"] for s in ("instructions", "responses")] == tokens


def test_without_progress_bars_each_generated_round_logs_one_line(scripted, model_dir, tmp_path, capsys):
    """`--no-progress` (a run in the background, its output in a log file): a line per brainstorming round this
    process generated, with the count so far; a resumed run's rounds read back from disk print none."""
    target = job(model_dir, tmp_path, num_instructions=5000, num_triplets=7, backend_options={"mode": "labels"})
    run_dir = generate(target, progress=False)
    rounds = [c for c in scripted.instances[0].calls if c[0].count("-") == 1]  # brainstorm prompt ids: r<n>-p<i>
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("selfspec: round ")]
    assert len(lines) == len(rounds) >= 2 and lines[0].startswith("selfspec: round 1: ")
    assert lines[-1].startswith(f"selfspec: round {len(rounds)}: 7 of 7 triplets, ") and lines[-1].endswith(" s")
    (run_dir / "manifest.json").unlink()  # unfinished: every round and chunk still on disk
    generate(target, progress=False)
    assert "selfspec: round " not in capsys.readouterr().err


def test_an_over_long_prompt_loses_documents_then_demos_never_its_task(scripted, model_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    long_doc = " ".join(["kinase"] * 300)
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": f"explain {long_doc}"}) + "\n" for i in range(3)))
    context = 64 + 650  # response_max_tokens 64; room for the header, demos and the task, not for 3 long documents
    settings = {"corpus": str(corpus), "retrieval_k": 3, "response_max_tokens": 64, "num_instructions": 4}
    run_dir = generate(job(model_dir, tmp_path, **settings, backend_options={"context": context}), progress=False)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    answers = [p for prompts, _ in scripted.instances[0].requests for p in prompts if not p.prefix]
    assert manifest["stages"]["responses"]["shortened"] == len(answers) == manifest["counts"]["instructions_kept"]
    for prompt in answers:
        assert len(prompt.text.split()) <= 650 and prompt.text.startswith("You are an expert in")
        assert prompt.text.rstrip().endswith("### Response:")  # the task is whole
        assert "[1] explain" in prompt.text and "[3] explain" not in prompt.text  # the lowest-ranked went first


def test_brainstorm_prompts_carry_their_grammar_only_to_a_backend_that_constrains_decoding(
    scripted, model_dir, tmp_path
):
    def patterns(**settings):
        generate(job(model_dir, tmp_path, **settings), progress=False)
        prompts = [p for prompts, _ in scripted.instances[-1].requests for p in prompts if p.prefix]
        return {p.pattern for p in prompts}

    (pattern,) = patterns(backend_options={"grammar": True}, brainstorm_grammar=True, instruction_max_tokens=100)
    assert pattern.startswith(" [A-Za-z0-9]") and pattern.endswith("\\n###")
    assert patterns(backend_options={"grammar": True}, seed=2) == {""}  # opt-in: the paper's sampling by default
    assert patterns(brainstorm_grammar=True, seed=3) == {""}  # a backend that does not declare it


def test_fit_prompts_rejects_what_does_not_fit_without_its_documents_and_demos():
    class Counter:
        context_tokens = 10

        def prompt_tokens(self, prompts, fmt):
            return [len(p.text.split()) for p in prompts]

    def build(i, demos, docs):
        text = " ".join(["header", *demos, *docs, *["task"] * (i + 1)])
        return Prompt(f"p{i}", text, ())

    specs = [(("d1", "d2"), ("doc1", "doc2")), (("d1", "d2"), ("doc1", "doc2")), ((), ())]
    prompts, shortened = fit_prompts(specs, build, Counter(), "completion", max_tokens=4)  # 6 tokens of room
    assert [p.text if p else None for p in prompts] == [
        "header d1 d2 doc1 doc2 task",  # 6 tokens: fits
        "header d1 d2 doc1 task task",  # 7: the last document goes
        "header task task task",
    ]
    assert shortened == 1
    prompts, shortened = fit_prompts([((), ())] * 6, build, Counter(), "completion", max_tokens=4)
    assert prompts[-1] is None and prompts[4] is not None and shortened == 1  # header + 6 tasks: no room left
    plain = object()  # a backend that cannot count tokens gets the prompts as built
    assert fit_prompts(specs, build, plain, "completion", 4)[0][0].text == "header d1 d2 doc1 doc2 task"


def test_zero_kept_fails_in_one_sentence_and_leaves_a_run_inspect_reads(scripted, model_dir, tmp_path):
    bad = job(model_dir, tmp_path, max_rounds=2, backend_options={"mode": "empty"})
    with pytest.raises(SelfSpecError) as caught:
        generate(bad, progress=False)
    message = str(caught.value)
    assert message.startswith(
        "zero instructions survived the filters: 0 instructions kept, 0 triplets (10 instructions requested); "
        "rejected: unparseable 8. Every rejection is in "
    )
    assert "\n  unparseable 8: brainstormed text did not follow the numbered Instruction/Input list" in message
    (run_dir,) = tmp_path.glob("selfspec/*/")
    assert not (run_dir / "data.jsonl").exists()  # nothing to train on, and not a finished run
    assert len((run_dir / "rejected.jsonl").read_text().splitlines()) == 8
    shown = report.inspect(run_dir)
    assert "UNFINISHED     zero instructions survived the filters" in shown and "unparseable" in shown
    assert main(["inspect", str(run_dir)]) == 0


def test_a_poor_run_warns_and_strict_stops_it_before_training(scripted, model_dir, tmp_path, capsys):
    poor = job(model_dir, tmp_path, backend_options={"mode": "same"})
    run_dir = generate(poor, progress=False)
    err = capsys.readouterr().err
    assert "selfspec: warning: one short answer, '2024-03-01', is 10 of the 10 triplets" in err
    strict = job(model_dir, tmp_path, backend_options={"mode": "same"}, strict=True)
    assert strict.dir == run_dir  # strict changes no data: the same run, reused, and refused
    with pytest.raises(SelfSpecError, match="selfspec.strict: the run in .* is poor .1 warning"):
        generate(strict, progress=False)
    capsys.readouterr()
    generate(job(model_dir, tmp_path), progress=False)  # a good run: no warning
    assert "warning" not in capsys.readouterr().err


def test_too_few_triplets_warn_with_the_leading_reasons_and_their_fixes():
    manifest = {
        "counts": {
            "instructions_kept": 4,
            "triplets": 1,
            "requested": 4,
            "rejected": {"truncated_response": 3, "over_quota": 9},
        },
        "inputs": {"settings": {"response_max_tokens": 16}},
    }
    (warning,) = funnel.poor_run(manifest, [{"output": "A full answer about the kinase."}])
    assert warning.startswith("only 1 triplets for the 4 instructions requested")
    assert "truncated_response 3: answers were cut at response_max_tokens=16: raise it" in warning
    assert "over_quota" not in warning


def test_filter_command(tmp_path, capsys):
    rows = [
        {"instruction": "List the genes named in this abstract.", "input": "TP53 was mutated.", "output": "TP53"},
        {"instruction": "List all the genes named in this abstract.", "input": "x", "output": "y"},
        {"instruction": "Plot the survival curve for both arms.", "input": "", "output": "z"},
        {
            "instruction": "Name the first-line drug for type 2 diabetes.",
            "input": "",
            "output": "The first-line drug for type 2 diabetes.",
        },
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["filter", str(src), str(tmp_path / "out.jsonl")]) == 0
    assert "1 kept, 3 rejected" in capsys.readouterr().out
    assert [json.loads(x)["input"] for x in (tmp_path / "out.jsonl").read_text().splitlines()] == ["TP53 was mutated."]
    reasons = [json.loads(x)["rejected"] for x in (tmp_path / "out.rejected.jsonl").read_text().splitlines()]
    assert reasons[0].startswith("similar:") and reasons[1] == "blacklist:plot"
    assert reasons[2].startswith("copied:instruction:")


def test_retrieval_grounds_responses_and_records_docs(scripted, model_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": f"Explain how {w} works."}) + "\n" for i, w in enumerate(WORDS))
    )
    run_dir = generate(job(model_dir, tmp_path, corpus=str(corpus), retrieval_k=2, num_instructions=4), progress=False)
    data = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
    assert all(1 <= len(row["docs"]) <= 2 and all(d.startswith("d") for d in row["docs"]) for row in data)
    assert all("### Background:\n[1] " in text for text in scripted.instances[0].texts)
    assert (run_dir / "index").is_dir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert (
        manifest["inputs"]["corpus_sha256"]
        and "grounded by bm25 retrieval over `corpus.jsonl`" in (run_dir / "README.md").read_text()
    )


def test_a_failed_write_stops_clearly_and_keeps_the_finished_chunks(scripted, model_dir, tmp_path, monkeypatch):
    import errno
    import os

    from selfspec_plugin import fileio

    clean = generate(job(model_dir, tmp_path / "clean"), progress=False)
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("chunk-00001.jsonl"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace)
    with pytest.raises(SelfSpecError, match=r"could not write .*chunk-00001\.jsonl: No space left on device"):
        generate(job(model_dir, tmp_path / "full"), progress=False)
    run_dir = tmp_path / "full" / "selfspec" / clean.name
    assert not list(run_dir.rglob("*.tmp")) and not (run_dir / "data.jsonl").exists()
    assert (run_dir / "responses" / "chunk-00000.jsonl").read_bytes() == (
        clean / "responses" / "chunk-00000.jsonl"
    ).read_bytes()
    monkeypatch.setattr(fileio.os, "replace", real_replace)
    generate(job(model_dir, tmp_path / "full"), progress=False)  # disk freed: the rerun resumes
    assert (run_dir / "data.jsonl").read_bytes() == (clean / "data.jsonl").read_bytes()


def test_jsonl_lines_survive_every_line_splitter(tmp_path):
    """U+0085/U+2028/U+2029 are line breaks to str.splitlines; json.dumps leaves them raw (found by hypothesis)."""
    from selfspec_plugin import fileio

    rows = [{"id": [{"\x85": None}], "output": "a\u2028b\u2029c"}, {"id": "2", "output": "plain"}]
    fileio.write_jsonl(tmp_path / "x.jsonl", rows)
    text = (tmp_path / "x.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line) for line in text.splitlines()] == rows == fileio.read_jsonl(tmp_path / "x.jsonl")


def test_seeds_only_trains_on_the_seeds_without_an_engine(scripted, tiny_model, tmp_path, capsys):
    from tiny_model import tiny_chat_model_dir

    run_dir = generate(job(tiny_model, tmp_path, seeds_only=True), progress=False)
    assert not scripted.instances  # no backend was started
    seeds = [json.loads(line) for line in (ROOT / "tests" / "data" / "seeds.jsonl").read_text().splitlines()]
    data = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
    assert [(r["instruction"], r["output"]) for r in data] == [(s["instruction"], s["output"]) for s in seeds]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["seeds_only"] and manifest["prompt_format"] == "completion"  # the tiny model has no chat template
    assert manifest["counts"]["triplets"] == len(seeds) and not (run_dir / "instructions").exists()
    assert (
        f"seeds only     {len(seeds)} seed tasks in data.jsonl (no generation: the control)" in capsys.readouterr().err
    )

    assert job(tiny_model, tmp_path).dir != run_dir  # its own run key
    chat = generate(job(tiny_chat_model_dir(), tmp_path / "chat", seeds_only=True), progress=False)
    rows = [json.loads(line) for line in (chat / "data.jsonl").read_text().splitlines()]
    assert json.loads((chat / "manifest.json").read_text())["prompt_format"] == "chat"
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": rows[0]["output"]}


class AdapterScripted(Scripted):
    """A third-party backend that declares LoRA support: its answers say which adapter served them."""

    name = "adapter-scripted"
    serves_adapters = True
    started: list[dict] = []

    @staticmethod
    def adapter_options(options, adapters):
        return {**options, "adapters": list(adapters)}

    def __init__(self, model, options):
        super().__init__(model, options)
        AdapterScripted.started.append(options)
        AdapterScripted.last = self

    def generate(self, prompts, sampling, mode, adapter=None):
        out = super().generate(prompts, sampling, mode)
        self.calls[-1] = (self.calls[-1], adapter)
        return [
            Completion(
                f"{c.text} [{Path(adapter).name}]" if adapter and not p.prefix else c.text, c.finish_reason, c.tokens
            )
            for p, c in zip(prompts, out)
        ]


@pytest.fixture
def adapter_backend():
    class Registration:
        @hookimpl
        def register_backends(self, register):
            register("adapter-scripted", AdapterScripted)

    reg = Registration()
    AdapterScripted.started = []
    registry.get_plugin_manager().register(reg)
    yield AdapterScripted
    registry.get_plugin_manager().unregister(reg)


def fake_adapter(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 8}))
    (out / "adapter_model.safetensors").write_bytes(b"weights")
    return out


def test_a_third_party_backend_that_declares_adapters_serves_iterate_and_eval(adapter_backend, model_dir, tmp_path):
    import yaml

    from selfspec_plugin.eval import run as evaluate
    from selfspec_plugin.eval.tasks import Task
    from selfspec_plugin.iterate import iterate, record_training

    recipe = tmp_path / "recipe.yml"
    raw = {
        "base_model": str(model_dir),
        "output_dir": str(tmp_path / "out"),
        "selfspec": {
            "seeds": str(ROOT / "tests" / "data" / "seeds.jsonl"),
            "backend": "adapter-scripted",
            "num_instructions": 4,
            "prompts_per_round": 4,
            "chunk_size": 4,
        },
    }
    recipe.write_text(yaml.safe_dump(raw))

    def train(path):  # what `axolotl train` does for selfspec: generate (through the plugin), then save an adapter
        cfg = yaml.safe_load(Path(path).read_text())
        generate(make_job(cfg["selfspec"], cfg["base_model"], cfg["output_dir"]), progress=False)
        record_training(str(path), str(fake_adapter(Path(cfg["output_dir"]))))

    rounds = iterate(recipe, raw, 2, train=train)
    assert rounds[1]["changed_responses"] == (4, 4)  # round 2's answers came through round 1's adapter
    assert AdapterScripted.started[-1]["adapters"] == [str((tmp_path / "out").resolve())]  # its own start options
    data = [json.loads(line) for line in Path(rounds[1]["run_dir"], "data.jsonl").read_text().splitlines()]
    assert all(row["output"].endswith("[out]") for row in data)

    task = Task(
        "t",
        "text",
        "Answer.",
        demos=[],
        instances=[{"input": f"question {i}", "output": "Answer"} for i in range(3)],
        source="x",
        max_tokens=8,
    )
    result = evaluate.evaluate(
        str(model_dir),
        [task],
        evaluate.model_specs([f"mine={tmp_path / 'out'}"], []),
        evaluate.Settings(),
        backend_name="adapter-scripted",
        options={},
        out_dir=tmp_path / "eval",
    )
    preds = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert {p["prediction"].endswith("[out]") for p in preds if p["model"] == "mine"} == {True}  # served, not merged
    assert not (tmp_path / "eval" / "merged").exists() and len(AdapterScripted.started) == 3
    assert [m["label"] for m in result["models"]] == ["base", "mine"]


def test_a_backend_without_adapters_is_refused_before_iterate_starts(scripted, model_dir, tmp_path, capsys):
    import yaml

    recipe = tmp_path / "recipe.yml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "base_model": str(model_dir),
                "output_dir": str(tmp_path / "out"),
                "selfspec": {"seeds": str(ROOT / "tests" / "data" / "seeds.jsonl"), "backend": "scripted"},
            }
        )
    )
    assert main(["iterate", str(recipe), "--rounds", "2"]) == 2
    assert "selfspec.backend: 'scripted' cannot apply a LoRA adapter per request" in capsys.readouterr().err
    assert scripted.instances == [] and not (tmp_path / "out").exists()


def test_an_interrupted_eval_resumes_with_the_tasks_it_finished(adapter_backend, model_dir, tmp_path):
    from selfspec_plugin.eval import run as evaluate
    from selfspec_plugin.eval.tasks import Task

    def task(name):
        return Task(
            name,
            "text",
            "Answer.",
            demos=[],
            source="x",
            max_tokens=8,
            instances=[{"input": f"{name} question {i}", "output": "Answer"} for i in range(3)],
        )

    adapter = fake_adapter(tmp_path / "out")
    kwargs = dict(
        models=evaluate.model_specs([f"mine={adapter}"], []),
        settings=evaluate.Settings(),
        backend_name="adapter-scripted",
        options={},
        out_dir=tmp_path / "eval",
    )
    real = AdapterScripted.generate

    def dies_on_task_b(self, prompts, sampling, mode, adapter=None):
        if prompts[0].id.startswith("b-") and adapter:
            raise KeyboardInterrupt  # the machine goes away in the middle of the adapter's second task
        return real(self, prompts, sampling, mode, adapter)

    AdapterScripted.generate = dies_on_task_b
    try:
        with pytest.raises(KeyboardInterrupt):
            evaluate.evaluate(str(model_dir), [task("a"), task("b")], **kwargs)
    finally:
        AdapterScripted.generate = real
    assert len(list((tmp_path / "eval" / "cache").glob("*.jsonl"))) == 3  # base a, base b, adapter a
    assert not (tmp_path / "eval" / "eval.json").exists()

    evaluate.evaluate(str(model_dir), [task("a"), task("b")], **kwargs)
    resumed = AdapterScripted.last.calls
    assert resumed == [([f"b-k0-s0-{i}" for i in range(3)], str(adapter))]  # only the adapter's task b was generated
    preds = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 12 and all(p["prediction"].endswith("[out]") for p in preds if p["model"] == "mine")

    (adapter / "adapter_model.safetensors").write_bytes(b"retrained")  # other weights: scored afresh
    evaluate.evaluate(str(model_dir), [task("a"), task("b")], **kwargs)
    assert len(AdapterScripted.last.calls) == 2


def test_the_child_process_keeps_its_parents_environment(scripted, model_dir, tmp_path, monkeypatch):
    """`selfspec CMD` runs offline unless told otherwise; the internal child (generation or eval for `axolotl
    train`) inherits its parent's environment as it is, and reads its job from a file."""
    import os

    from selfspec_plugin import fileio

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    the_job = job(model_dir, tmp_path)
    fileio.write_json(tmp_path / "task.json", {"generate": the_job.to_json()})
    assert main(["child", str(tmp_path / "task.json")]) == 0
    assert (the_job.dir / "manifest.json").is_file() and "HF_HUB_OFFLINE" not in os.environ
    assert main(["inspect", str(the_job.dir)]) == 0 and os.environ["HF_HUB_OFFLINE"] == "1"


def test_a_run_reads_and_checks_its_seeds_once(scripted, model_dir, tmp_path, monkeypatch):
    """Parent and generation child together: `check_job` runs once (in the parent, before the child starts), and
    the seeds are read once and handed to the child with the job (the pipeline reads them from the job)."""
    from selfspec_plugin import fileio, rundirs, runner

    counts = {"load_seeds": 0, "check_job": 0}

    def counted(name, real):
        def call(*args, **kwargs):
            counts[name] += 1
            return real(*args, **kwargs)

        return call

    def in_process(task, what):  # runner.run_child, without the subprocess: the child's reads are counted too
        fileio.write_json(tmp_path / "task.json", task)
        assert main(["child", str(tmp_path / "task.json")]) == 0

    monkeypatch.setattr(rundirs, "load_seeds", counted("load_seeds", rundirs.load_seeds))
    monkeypatch.setattr(runner, "check_job", counted("check_job", runner.check_job))
    monkeypatch.setattr(runner, "run_child", in_process)
    the_job = job(model_dir, tmp_path)
    assert runner.generate_in_child(the_job) == the_job.dir and (the_job.dir / "manifest.json").is_file()
    assert counts == {"load_seeds": 1, "check_job": 1}


def test_the_child_does_not_inherit_a_launchers_rank_variables_or_its_thread_count(monkeypatch):
    """Under `accelerate launch` a rank has RANK, ACCELERATE_* and OMP_NUM_THREADS (1 on CPU): the generator child
    is one standalone process that uses the machine, as `selfspec generate` does. Outside a launcher, a user's
    OMP_NUM_THREADS stays."""
    import os

    from selfspec_plugin.runner import child_env

    for key in [k for k in os.environ if k.startswith("ACCELERATE_")]:  # Axolotl's in-process tests leave some
        monkeypatch.delenv(key)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert child_env()["OMP_NUM_THREADS"] == "3"
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    env = child_env()
    assert not {"OMP_NUM_THREADS", "RANK", "ACCELERATE_MIXED_PRECISION"} & set(env) and env["PATH"]


def test_a_cpu_rank_left_at_one_thread_by_accelerate_trains_on_its_share_of_the_cores():
    from selfspec_plugin.runner import training_threads

    rank = {"ACCELERATE_MIXED_PRECISION": "no", "OMP_NUM_THREADS": "1", "RANK": "0"}
    assert training_threads(rank, cores=2, cuda=False) == 2
    assert training_threads({**rank, "LOCAL_WORLD_SIZE": "2"}, cores=8, cuda=False) == 4  # two ranks share 8 cores
    assert training_threads({**rank, "LOCAL_WORLD_SIZE": "2"}, cores=2, cuda=False) is None  # one core each already
    assert training_threads(rank, cores=2, cuda=True) is None  # a GPU rank's CPU threads are not its work
    assert training_threads({**rank, "OMP_NUM_THREADS": "3"}, cores=16, cuda=False) is None  # a count someone chose
    assert training_threads({"OMP_NUM_THREADS": "1"}, cores=2, cuda=False) is None  # no launcher: the user's 1
