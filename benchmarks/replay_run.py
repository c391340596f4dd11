"""Where an unfinished run stands: its finished brainstorming rounds and response chunks replayed through the
pipeline's own filters, without an engine, into a copy of the run folder that gets the data.jsonl and
rejected.jsonl the run would have written had it stopped there (benchmarks/b7_tokens.py reads them).

    .venv/bin/python benchmarks/replay_run.py RECIPE OUT [--set stop_loops=false ...]

The run is the one RECIPE names (its run key; `--set` changes a `selfspec:` setting first, e.g. to name a run made
before a setting's default changed). The replay stops at the first round or chunk that is not on disk.

It also reads the run's legs back from the times its round and chunk files were written: a pause of more than
`--gap` minutes between two writes ends a leg. A leg's minutes run from its first write to its last, so they leave
out each leg's engine start and first round (a run in legs is resumed by a process that records only its own time).
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import yaml
from transformers import AutoTokenizer

from selfspec_plugin import fileio, pipeline
from selfspec_plugin.backends.base import chat_model, prompt_lengths
from selfspec_plugin.recipe import load
from selfspec_plugin.runner import make_job
from selfspec_plugin.seeds import load_seeds


class NotOnDisk(Exception):
    pass


class Replay:
    """Counts prompt tokens as the engine would (so prompts are fitted as they were) and generates nothing."""

    name = "vllm"

    def __init__(self, model: str, context: int):
        self.tokenizer, self.context_tokens = AutoTokenizer.from_pretrained(model), context
        self.chat_capable = bool(getattr(self.tokenizer, "chat_template", None))
        self.chat_model = chat_model(self.tokenizer, model)

    def prompt_tokens(self, prompts: list, prompt_format: str) -> list[int]:
        return prompt_lengths(self.tokenizer, prompts, prompt_format)

    def generate(self, *args, **kwargs):
        raise NotOnDisk


def legs(run_dir: Path, gap_minutes: float) -> list[dict]:
    """The run's legs from its files' write times: [{"start", "end" (UTC), "minutes", "files"}]."""
    times = sorted(
        p.stat().st_mtime for p in [*run_dir.glob("instructions/*.jsonl"), *run_dir.glob("responses/*.jsonl")]
    )
    found: list[list[float]] = []
    for t in times:
        if found and t - found[-1][-1] <= 60 * gap_minutes:
            found[-1].append(t)
        else:
            found.append([t])
    utc = lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    return [
        {"start": utc(f[0]), "end": utc(f[-1]), "minutes": round((f[-1] - f[0]) / 60, 1), "files": len(f)}
        for f in found
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("out", type=Path, help="the copy of the run folder to write")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a selfspec setting (YAML value)")
    ap.add_argument("--gap", type=float, default=5.0, help="minutes between two writes that end a leg")
    args = ap.parse_args()
    raw = load(args.recipe)
    for item in args.set:
        key, value = item.split("=", 1)
        raw["selfspec"][key] = yaml.safe_load(value)
    job = make_job(raw["selfspec"], raw["base_model"], raw["output_dir"], args.recipe)
    shutil.rmtree(args.out, ignore_errors=True)
    shutil.copytree(job.dir, args.out)
    backend = Replay(raw["base_model"], (raw["selfspec"].get("vllm") or {}).get("max_model_len") or 4096)
    prompt_format = pipeline.resolve_prompt_format(job.config.prompt_format, backend)
    gen = pipeline.Generation(job, args.out, backend, prompt_format, load_seeds(job.config.seeds))
    run = pipeline.answer_each_round if job.config.num_triplets else pipeline.brainstorm_then_answer
    try:
        run(gen, progress=False)
    except NotOnDisk:
        pass
    fileio.write_jsonl(args.out / "data.jsonl", gen.data)
    fileio.write_jsonl(args.out / "rejected.jsonl", gen.rejected)
    summary = {
        "run_key": job.key,
        "rounds_on_disk": len(list((args.out / "instructions").glob("round-*.jsonl"))),
        "instructions_kept": len(gen.kept),
        "triplets": len(gen.data),
        "rejected": dict(Counter(r["rejected"].split(":")[0] for r in gen.rejected).most_common()),
        "legs": legs(job.dir, args.gap),
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
