"""Property-based fuzzing (hypothesis) of everything that reads untrusted text: the seed loader, the
generation-output parser, the filters and the jsonl reader. Arbitrary unicode, huge and empty inputs must
give records or our own SelfSpecError, never another exception."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfspec_plugin import filters
from selfspec_plugin.cli import main
from selfspec_plugin.config import SelfSpecConfig
from selfspec_plugin.errors import SelfSpecError
from selfspec_plugin.fileio import jsonl_objects
from selfspec_plugin.pipeline import build_checks
from selfspec_plugin.prompts import parse_brainstorm
from selfspec_plugin.seeds import load_seeds

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# text that looks like model output: the list markers the parser looks for, mixed with anything at all
MARKERS = st.sampled_from(
    ["###", "\n", "1. Instruction:", "2. Input:", "Input:", "Instruction:", "<noinput>", " ", ":"]
)
OUTPUTS = st.lists(st.one_of(st.text(), MARKERS), max_size=30).map("".join)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)
SEED_KEYS = st.sampled_from(["id", "task_type", "instruction", "input", "output"]) | st.text(max_size=8)
SEEDISH = st.dictionaries(SEED_KEYS, JSONISH | st.text(), max_size=6)


def _loads_or_our_error(fn, *args):
    try:
        return fn(*args)
    except SelfSpecError as exc:
        assert str(exc)
        return None


@EXAMPLES
@given(
    lines=st.lists(st.one_of(SEEDISH.map(json.dumps), st.text(), JSONISH.map(json.dumps)), max_size=8),
    raw=st.binary(max_size=200),
    suffix=st.sampled_from([".jsonl", ".yaml"]),
)
def test_seed_loader_returns_seeds_or_raises_selfspec_error(tmp_path, lines, raw, suffix):
    path = tmp_path / f"seeds{suffix}"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + raw)
    seeds = _loads_or_our_error(load_seeds, path)
    if seeds is not None:
        assert seeds and all(isinstance(s[f], str) for s in seeds for f in ("id", "instruction", "input", "output"))


@EXAMPLES
@given(raw=st.binary(max_size=400))
def test_jsonl_reader_on_arbitrary_bytes(tmp_path, raw):
    path = tmp_path / "any.jsonl"
    path.write_bytes(raw)
    rows = _loads_or_our_error(lambda: list(jsonl_objects(path)))
    assert rows is None or all(isinstance(obj, dict) and lineno >= 1 for lineno, obj in rows)


@EXAMPLES
@given(prefix=OUTPUTS, completion=OUTPUTS, truncated=st.booleans())
def test_parser_returns_items_or_rejections(prefix, completion, truncated):
    for item in parse_brainstorm(prefix, completion, truncated):
        assert set(item) in ({"instruction", "input"}, {"rejected", "raw"})
        assert all(isinstance(v, str) for v in item.values())


CHECKS = {
    stage: build_checks(stage, {**SelfSpecConfig(seeds="-").model_dump(), "existing": ["Name the enzyme."]}, None)
    for stage in ("instruction", "response")
}


@EXAMPLES
@given(instruction=st.text(), inp=st.text(), output=st.text(), finish=st.sampled_from(["stop", "length"]))
def test_filters_return_a_reason_or_none(instruction, inp, output, finish):
    rec = {"instruction": instruction, "input": inp, "output": output, "finish_reason": finish}
    reasons = {stage: filters.run_checks(checks, rec) for stage, checks in CHECKS.items()}
    for reason in reasons.values():
        assert reason is None or (isinstance(reason, str) and reason)
    # and the decisions any input must get: an instruction under 4 words (the paper's "<= 3") never passes, nor does a
    # response cut at the token cap or with no text
    if len(instruction.split()) < 4:
        assert reasons["instruction"] is not None, rec
    if finish == "length" or not output.strip():
        assert reasons["response"] is not None, rec


@settings(max_examples=25, deadline=None)
@given(big=st.text(min_size=1, max_size=20).map(lambda t: t * 5000))
def test_filters_and_parser_on_huge_inputs(big):
    """A text repeated 5,000 times: the length filter, the copy filter and the parser give the answer they must."""
    rec = {"instruction": big, "input": big, "output": big, "finish_reason": "stop"}
    words = len(big.split())  # 0 or 1 word (no whitespace in the repeated text), else >= 5,000
    assert filters.word_count_check(4, 150)(rec) == ("too_short" if words < 4 else "too_long")
    expected = (
        "empty_response"
        if not big.strip()
        else "placeholder_response"
        if filters.PLACEHOLDER.search(big)
        else "copied:input:1.00"
        if filters.rouge_tokens(big)
        else None
    )
    assert filters.run_checks(CHECKS["response"], rec) == expected  # the output is its input
    for item in parse_brainstorm(big, big, False):
        assert (item.get("rejected") in ("unparseable", "truncated") and item["raw"] in big + big) or (
            item["instruction"] in big + big and item["input"] in big + big
        )


@EXAMPLES
@given(a=st.text(), b=st.text())
def test_rouge_l_matches_rouge_score(a, b):
    from rouge_score import rouge_scorer

    ours = filters.rouge_l_f(filters.rouge_tokens(a), filters.rouge_tokens(b))
    assert (
        ours == rouge_scorer.RougeScorer(["rougeL"]).score(a, b)["rougeL"].fmeasure
    )  # bit for bit: decisions at the threshold must agree


@EXAMPLES
@given(texts=st.lists(st.text(max_size=60), max_size=25), probe=st.text(max_size=60))
def test_novelty_pool_agrees_with_scoring_every_pair(texts, probe):
    pool = filters.NoveltyPool(0.7)
    for t in texts:
        pool.add(t)
    scores = [filters.rouge_l_f(filters.rouge_tokens(probe), filters.rouge_tokens(t)) for t in texts]
    hit = pool.most_similar(probe)
    assert (hit is not None) == any(s > 0.7 for s in scores)
    if hit is not None:
        assert scores[hit[1]] == pytest.approx(hit[0]) and hit[0] > 0.7


SENTENCE = st.sampled_from(["Name the enzyme that cuts DNA at these sites.", "List the symptoms of the disease below."])
RECORDS = st.fixed_dictionaries(
    {"instruction": SENTENCE | JSONISH},
    optional={"input": SENTENCE | JSONISH, "output": SENTENCE | JSONISH, "id": JSONISH},
)


@EXAMPLES
@given(rows=st.lists(RECORDS | SEEDISH | JSONISH, max_size=6))
def test_filter_command_on_arbitrary_records(tmp_path, rows, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["filter", str(src), str(tmp_path / "out.jsonl")])
    err = capsys.readouterr().err
    assert code == 0 or (code == 2 and "selfspec: error:" in err)
    if code == 0:
        kept = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert all(isinstance(k["instruction"], str) for k in kept)
