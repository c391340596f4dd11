"""A log a person reads (issues 32 and 35): known third-party noise dropped where selfspec starts processes, real
warnings kept, `--verbose` / SELFSPEC_VERBOSE=1 showing everything; the closing summary of `axolotl train`; the
eval's labels and its summary text."""

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

from selfspec_plugin import quiet, report, runner
from selfspec_plugin.cli import main

# Lines as the demo printed them (issue 32), one per NOISE entry, and lines that must pass.
TORCHAO = (
    "Failed to load /v/site-packages/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so: Could not load this library: "
    "/v/site-packages/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so"
)
PYTREE = (
    "W1205 21:41:54.136000 19725 torch/utils/_pytree.py:630] <enum 'KernelPreference'> is an Enum subclass and is "
    "now natively supported by torch.compile as an opaque value type. Calling register_constant() on Enum "
    "subclasses is deprecated and will be an error in a future release."
)
BNB_WARNING = (
    "[2026-12-05 21:41:41,937] [WARNING] [py.warnings] /v/bitsandbytes/backends/cpu/ops.py:247: UserWarning: "
    "Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes' because Hugging Face Hub is "
    "offline"
)
BNB_LOG = (
    "[2026-12-05 21:41:41,937] [WARNING] [bitsandbytes.backends.cpu.ops] Failed to load CPU gemm_4bit_forward from "
    "kernels-community: Version 1 is not available in the local cache"
)
NANOBIND = [
    "nanobind: leaked 12 instances!",
    ' - leaked instance 0x55d0c8 of type "triton._C.libtriton.ir.context"',
    "nanobind: leaked 7 types!",
    ' - leaked type "triton._C.libtriton.ir.builder"',
    " - ... skipped remainder",
    "nanobind: leaked 10 functions!",
    ' - leaked function "load_dialects"',
    "nanobind: this is likely caused by a reference counting issue in the binding code.",
    "See https://nanobind.readthedocs.io/en/latest/refleaks.html",  # (printed without a newline: see noisy_text)
]
REAL = [
    "[2026-12-05 21:41:44,177] [WARNING] [selfspec] selfspec: selfspec.instruction_max_tokens: 192, but 15 of 80",
    "Failed to load the model: not a directory",  # a failure that is not torchao's prebuilt kernels
    "[W1205 21:42:11 utils.cpp:68] Warning: NUMA binding: Using MEMBIND policy for memory allocation",
    "/x/y.py:3: UserWarning: something a user should read",
    "  with its source line",
]


def noisy_text() -> bytes:
    lines = [REAL[0], TORCHAO, PYTREE, BNB_WARNING, "  gemm_4bit_forward_kernel = get_kernel(", "", BNB_LOG]
    return "\n".join(lines + REAL[1:] + NANOBIND).encode()  # nanobind's last line ends the stream, unfinished


def test_every_noise_entry_says_why():
    assert all(len(n.why) > 40 for n in quiet.NOISE)


def test_line_filter_drops_noise_and_keeps_real_warnings_in_any_chunking():
    text = noisy_text()
    want = ("\n".join(REAL) + "\n").encode()
    for size in (1, 7, 4096):  # lines split across reads
        lines = quiet.LineFilter()
        out = b"".join(lines.feed(text[i : i + size]) for i in range(0, len(text), size)) + lines.partial()
        assert out == want


def test_a_progress_bar_passes_as_it_is_drawn():
    lines = quiet.LineFilter()
    assert lines.feed(b"\rsteps:  10%|#  | 1/10") == b"\r"  # the bar is held: its line is not finished ...
    assert lines.partial() == b"steps:  10%|#  | 1/10"  # ... until the pump's idle timeout releases it
    assert lines.feed(b"\rsteps: 100%|###| 10/10\n") == b"\rsteps: 100%|###| 10/10\n"


def test_filters_in_our_own_processes_drop_only_the_noise(caplog, monkeypatch):
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    monkeypatch.setattr(quiet.install, "done", False, raising=False)
    with warnings.catch_warnings():
        quiet.install()
        torchao, pytree = logging.getLogger("torchao"), logging.getLogger("torch.utils._pytree")
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("Skipping publisher trust check for 'kernels-community/x' because offline", UserWarning)
            warnings.warn("a real one", UserWarning)
        torchao.warning("Failed to load /v/torchao/_C_cutlass_90a.abi3.so: nope")
        torchao.warning("torchao: something else")
        pytree.warning("Calling register_constant() on Enum subclasses is deprecated")
    assert [str(w.message) for w in caught] == ["a real one"]
    assert [r.getMessage() for r in caplog.records] == ["torchao: something else"]


CHILD = "import sys; sys.stderr.write(open(sys.argv[1]).read()); sys.exit(3)"


def test_a_child_is_read_through_the_filter_and_verbose_shows_everything(tmp_path, capfd, monkeypatch):
    (tmp_path / "noise.txt").write_bytes(noisy_text())
    cmd = [sys.executable, "-c", CHILD, str(tmp_path / "noise.txt")]
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    assert quiet.run(cmd) == 3
    assert capfd.readouterr().err == "\n".join(REAL) + "\n"
    wrapper = [sys.executable, quiet.__file__, *cmd]  # what `make demo` runs `axolotl train` through
    proc = subprocess.run(wrapper, capture_output=True)
    assert proc.returncode == 3 and proc.stderr.decode() == "\n".join(REAL) + "\n"
    proc = subprocess.run(wrapper, capture_output=True, env={**os.environ, quiet.VERBOSE_ENV: "1"})
    assert proc.returncode == 3 and proc.stderr == noisy_text()


def test_run_child_filters_unless_verbose(monkeypatch):
    calls = []
    monkeypatch.setattr(quiet, "run", lambda cmd, **kw: calls.append("filtered") or 0)
    monkeypatch.setattr(runner.subprocess, "run", lambda cmd, **kw: calls.append("plain") or _Done())
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    runner.run_child({"generate": {}}, "generation")
    monkeypatch.setenv(quiet.VERBOSE_ENV, "1")
    runner.run_child({"generate": {}}, "generation")
    assert calls == ["filtered", "plain"]


class _Done:
    returncode = 0


def test_selfspec_verbose_is_global_and_reaches_children(tmp_path, monkeypatch):
    seeds = tmp_path / "s.jsonl"
    seeds.write_text(json.dumps({"instruction": "Name the gene in the sentence.", "output": "BRCA1"}) + "\n")
    monkeypatch.setenv(quiet.VERBOSE_ENV, "0")  # (restored after the test)
    assert not quiet.verbose()
    assert main(["--verbose", "seeds", "check", str(seeds)]) == 0
    assert quiet.verbose() and os.environ[quiet.VERBOSE_ENV] == "1"


def test_the_closing_summary_of_axolotl_train(tmp_path, monkeypatch):
    from selfspec_plugin.axolotl_plugin import closing_summary

    monkeypatch.chdir(tmp_path)
    counts = {"instructions_kept": 20, "triplets": 14, "requested": 20, "rejected": {"truncated_response": 4}}
    run_dir = tmp_path / "outputs" / "smoke" / "selfspec" / "ab12"
    text = closing_summary({"counts": counts}, run_dir, Path("outputs/smoke"), "recipes/smoke.yml", False, False)
    assert text.splitlines() == [
        "selfspec: done",
        "  data     20 instructions kept, 14 triplets (20 instructions requested); rejected: truncated_response 4",
        "  run      outputs/smoke/selfspec/ab12",
        "  adapter  outputs/smoke",
        "  next     selfspec inspect outputs/smoke/selfspec/ab12   (what the data holds)",
        "           selfspec eval recipes/smoke.yml --task HELD_OUT.jsonl   (base vs this adapter: docs/eval.md)",
    ]
    evaluated = closing_summary({"counts": counts}, run_dir, tmp_path / "outputs/smoke", "r.yml", True, True)
    assert "  eval     outputs/smoke/eval/eval.md" in evaluated.splitlines() and "selfspec eval" not in evaluated
    tasks = closing_summary({"counts": counts}, run_dir, Path("/elsewhere/a"), "r.yml", True, False)
    assert "  adapter  /elsewhere/a" in tasks
    assert tasks.endswith("selfspec eval r.yml   (base vs this adapter: docs/eval.md)")


def eval_result(shots, limit) -> dict:
    return {
        "models": [{"label": "base", "adapter": None, "format": "alpaca"}],
        "rows": [],
        "tasks": [],
        "shots": shots,
        "averages": [],
        "deltas": [],
        "samplings": 3,
        "model": "m",
        "backend": "vllm",
        "limit": limit,
        "wall_seconds": 1,
    }


def test_eval_md_says_how_the_items_were_asked():
    k0 = report.markdown_table(eval_result([0], None))
    assert "k = 0 only: no demonstrations, one prompt per item; every item of each task." in k0
    assert "demonstration samplings" not in k0 and "limit None" not in k0
    k5 = report.markdown_table(eval_result([0, 5], 20))
    assert "3 demonstration samplings for k > 0 (mean ± std); at most 20 items per task." in k5


def test_eval_names_the_default_adapter_after_its_folder(tmp_path, monkeypatch):
    from selfspec_plugin.eval import run

    adapter = tmp_path / "smoke-cpu"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8}))
    tasks = Path(__file__).parents[1] / "seeds" / "eval" / "biomed.jsonl"
    seen = {}
    monkeypatch.setattr(run, "evaluate", lambda model, tasks, specs, *a, **kw: seen.setdefault("specs", specs))
    raw = {"base_model": "m", "output_dir": str(adapter), "selfspec": {"seeds": "s.jsonl"}}
    run.evaluate_recipe(raw, tasks=[str(tasks)])
    assert [s["name"] for s in seen["specs"]] == ["base", "smoke-cpu"]


def test_the_console_keeps_stderr_and_stdout_in_order_and_stdout_redirected_clean(tmp_path):
    seeds = tmp_path / "s.jsonl"
    seeds.write_text(json.dumps({"instruction": "Name the gene in the sentence.", "output": "BRCA1"}) + "\n")
    # main() without arguments: the console script's path, where stderr goes through the filter process
    cmd = [sys.executable, "-c", "import sys; from selfspec_plugin.cli import main; main()", "seeds", "check", seeds]
    both = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert both.stdout.splitlines()[:2] == [
        f"warning: {seeds}: 1 seeds, below the paper's range of ~50-100 (the README recommends 50-100): the "
        "brainstormed tasks will vary less and repeat the seeds more",
        f"{seeds}: 1 seeds, 1 task types",
    ]  # (the warning is written first, on stderr, and read first)
    apart = subprocess.run(cmd, capture_output=True, text=True)
    assert apart.stdout.startswith(f"{seeds}: 1 seeds") and "warning:" in apart.stderr


LATE = """
import subprocess
from selfspec_plugin.cli import cli, main

@cli.command("late")
def late():  # what nanobind does: print after the command, while (here: after) the interpreter shuts down
    subprocess.Popen(["sh", "-c", 'sleep 0.5; cat "$LATE_TEXT" >&2'])

main()
"""


def test_the_console_filter_outlives_the_interpreter(tmp_path):
    script, text = tmp_path / "late.py", tmp_path / "late.txt"
    script.write_text(LATE)
    text.write_text('nanobind: leaked 3 types!\n - leaked type "ir.builder"\nreal line\n')
    env = {**os.environ, "LATE_TEXT": str(text)}
    proc = subprocess.run([sys.executable, str(script), "late"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "real line\n"  # (capture_output waits for the pipe's last writer)
    verbose = subprocess.run(
        [sys.executable, str(script), "--verbose", "late"], capture_output=True, text=True, env=env
    )
    assert verbose.stderr.startswith("nanobind: leaked 3 types!")
