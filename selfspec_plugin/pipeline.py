"""The self-specialization pipeline: seeds -> brainstormed (instruction, input) -> responses -> filters.

It runs without Axolotl. Work is done in chunks that are written atomically to the run directory, so a
killed run resumes where it stopped and, since every request's seed derives from the run seed and the
item's id, produces the same final dataset as an uninterrupted run.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from . import fileio, registry, rundirs
from .backends import Sampling
from .dataset import Generated, Manifest
from .errors import SelfSpecError
from .filters import drift, run_checks
from .prompts import brainstorm_prompt, parse_brainstorm, response_prompt
from .recipe import versions
from .retrieval import load_corpus
from .seeds import load_seeds

ALPACA_FIELDS = ("instruction", "input", "output")


def resolve_prompt_format(prompt_format: str, backend) -> str:
    """`auto`: chat prompts for a chat/instruct model (`backend.chat_model`, see backends.chat_model), completion
    prompts for a base model even when its tokenizer carries a template. The training format follows it."""
    if prompt_format == "chat" and not backend.chat_capable:
        raise SelfSpecError(
            "selfspec.prompt_format: 'chat' needs a tokenizer with a chat template; this model has none"
        )
    if prompt_format == "auto":
        return "chat" if getattr(backend, "chat_model", backend.chat_capable) else "completion"
    return prompt_format


def filter_specs(names: list[str] | None) -> dict:
    """The registered filters that `selfspec.filters` names (all when None); an unknown name is an error."""
    specs = registry.filters()
    if names is None:
        return specs
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise SelfSpecError(f"selfspec.filters: unknown filter {unknown[0]!r} (available: {', '.join(sorted(specs))})")
    return {n: specs[n] for n in names}


def build_checks(stage: str, settings: dict, names: list[str] | None) -> list:
    chosen = sorted((s for s in filter_specs(names).values() if s.stage == stage), key=lambda s: s.order)
    return [s.build(settings) for s in chosen]


def sample_seeds(seeds: list[dict], k: int, key: str) -> list[dict]:
    return random.Random(key).sample(seeds, min(k, len(seeds)))


class Stats:
    def __init__(self):
        self.tokens = 0
        self.seconds = 0.0

    def add(self, completions, seconds: float) -> None:
        self.tokens += sum(c.tokens for c in completions)
        self.seconds += seconds


def _generate_chunk(
    path: Path, backend, prompts, sampling, prompt_format, stats: Stats, adapter: str | None = None
) -> list[dict]:
    """Load a finished chunk from disk, or generate it and write it atomically.

    Rows on disk are reused by prompt id (a prompt's id fixes its text and seed): a chunk that holds exactly
    these prompts is returned as is; one that holds some of them (another `chunk_size`, or the short last round
    of a smaller run being extended) has only the missing ones generated.
    """
    done = {r["id"]: r for r in fileio.read_jsonl(path)} if path.is_file() else {}
    todo = [p for p in prompts if p.id not in done]
    if todo:
        start = time.perf_counter()
        completions = backend.generate(todo, sampling, prompt_format, **({"adapter": adapter} if adapter else {}))
        stats.add(completions, time.perf_counter() - start)
        done.update(
            {
                p.id: {"id": p.id, "text": c.text, "finish_reason": c.finish_reason, "tokens": c.tokens}
                for p, c in zip(todo, completions)
            }
        )
    rows = [done[p.id] for p in prompts]
    if todo:
        fileio.write_jsonl(path, rows)
    return rows


def draw(request: int, samples: int) -> int:
    """The request whose demos a request uses: `samples` consecutive requests (`instruction_samples`,
    `response_samples`) share the first one's draw (with 1, each its own, as before the settings existed)."""
    return request - request % samples


def round_size(per_round: int, missing: int, kept: int, prompted: int, margin: float = 1.25) -> int:
    """Prompts for the next brainstorming round: `prompts_per_round`, or fewer when the yield so far says fewer
    will do (`missing` instructions at `kept / prompted` per prompt, plus a margin), so that the last round
    does not write a full round of items past the quota. A function of the finished rounds only, so a
    resumed run asks for the same rounds."""
    if not kept:
        return per_round
    return max(1, min(per_round, math.ceil(margin * missing * prompted / kept)))


def brainstorm(job, run_dir, backend, prompt_format, seeds, progress) -> tuple[list[dict], list[dict], dict]:
    cfg = job.config
    settings = {**cfg.model_dump(), "existing": [s["instruction"] for s in seeds]}
    checks = build_checks("instruction", settings, cfg.filters)
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.instruction_max_tokens, cfg.seed)
    kept, rejected, stats, rounds, prompted = [], [], Stats(), 0, 0
    bar = tqdm(total=cfg.num_instructions, desc="selfspec: instructions", unit="instr", disable=not progress)
    for rnd in range(cfg.max_rounds):
        rounds = rnd + 1
        size = round_size(cfg.prompts_per_round, cfg.num_instructions - len(kept), len(kept), prompted)
        prompted += size
        prompts = [
            brainstorm_prompt(
                f"r{rnd}-p{i}",
                sample_seeds(
                    seeds, cfg.instruction_demos, f"{cfg.seed}:demos:r{rnd}-p{draw(i, cfg.instruction_samples)}"
                ),
                cfg.domain,
                cfg.instruction_items,
            )
            for i in range(size)
        ]
        rows = _generate_chunk(
            run_dir / "instructions" / f"round-{rnd:05d}.jsonl", backend, prompts, sampling, prompt_format, stats
        )
        for prompt, row in zip(prompts, rows):
            for k, item in enumerate(parse_brainstorm(prompt.prefix, row["text"], row["finish_reason"] == "length")):
                item = {"id": f"{row['id']}-{k}", **item}
                if "rejected" not in item:
                    item["rejected"] = run_checks(checks, item)
                if item["rejected"]:
                    rejected.append({"stage": "instruction", **item})
                else:  # the whole last round's passing items, as in the Alpaca reference: they are paid for
                    kept.append({key: value for key, value in item.items() if key != "rejected"})
                    bar.update(int(bar.n < bar.total))
        if len(kept) >= cfg.num_instructions:
            break
    bar.close()
    return (
        kept,
        rejected,
        {"rounds": rounds, "prompts": prompted, "tokens": stats.tokens, "seconds": round(stats.seconds, 2)},
    )


def reuse_instructions(run_dir: Path) -> tuple[list[dict], list[dict], dict]:
    """Iterative rounds: the instructions a finished earlier run kept (its `instructions.jsonl`)."""
    path = run_dir / "instructions.jsonl"
    if not (rundirs.is_complete(run_dir) and path.is_file()):
        raise SelfSpecError(f"selfspec.previous_round.run_dir: {run_dir} is not a finished run with instructions.jsonl")
    kept = fileio.read_jsonl(path)
    return kept, [], {"rounds": 0, "prompts": 0, "reused_from": str(run_dir), "tokens": 0, "seconds": 0.0}


def respond(job, run_dir, backend, prompt_format, seeds, instructions, progress) -> tuple[list[dict], list[dict], dict]:
    """Responses to the kept instructions, chunk by chunk; in an iterative round, by base + previous adapter."""
    cfg = job.config
    adapter = cfg.previous_round.adapter if cfg.previous_round else None
    checks = build_checks("response", cfg.model_dump(), cfg.filters)
    sampling = Sampling(cfg.response_temperature, 1.0, cfg.response_max_tokens, cfg.seed)
    retriever = None
    if cfg.corpus:
        docs = load_corpus(cfg.corpus, cfg.corpus_text_field)
        retriever = registry.make_retriever(cfg.retriever, docs, run_dir / "index")
    data, rejected, stats = [], [], Stats()
    chunks = range(0, len(instructions), cfg.chunk_size)
    for c, start in enumerate(tqdm(chunks, desc="selfspec: responses", unit="chunk", disable=not progress)):
        items = instructions[start : start + cfg.chunk_size]
        hits = (
            retriever.search([f"{it['instruction']} {it['input']}" for it in items], cfg.retrieval_k)
            if retriever
            else [[] for _ in items]
        )
        prompts = [
            response_prompt(
                it["id"],
                it,
                sample_seeds(
                    seeds,
                    cfg.response_demos,
                    f"{cfg.seed}:demos:{instructions[draw(start + i, cfg.response_samples)]['id']}",
                ),
                cfg.domain,
                tuple(h["text"] for h in found),
            )
            for i, (it, found) in enumerate(zip(items, hits))
        ]
        rows = _generate_chunk(
            run_dir / "responses" / f"chunk-{c:05d}.jsonl", backend, prompts, sampling, prompt_format, stats, adapter
        )
        for item, row, found in zip(items, rows, hits):
            rec = {**item, "output": row["text"].strip(), "finish_reason": row["finish_reason"]}
            reason = run_checks(checks, rec) or ("over_quota" if len(data) >= cfg.num_instructions else None)
            if reason:
                rejected.append({"stage": "response", **rec, "rejected": reason})
            else:
                data.append(
                    {
                        "id": rec["id"],
                        **{f: rec[f] for f in ALPACA_FIELDS},
                        **({"docs": [h["id"] for h in found]} if retriever else {}),
                    }
                )
    return data, rejected, {"chunks": len(chunks), "tokens": stats.tokens, "seconds": round(stats.seconds, 2)}


def filter_records(
    records: list[dict], settings: dict, names: list[str] | None = None
) -> tuple[list[dict], list[dict]]:
    """Run the registered instruction and response filters over existing triplets: (kept, rejected)."""
    checks = build_checks("instruction", settings, names) + build_checks("response", settings, names)
    kept, rejected = [], []
    for rec in records:
        reason = run_checks(checks, {"input": "", "output": "", **rec})
        (rejected if reason else kept).append({**rec, "rejected": reason} if reason else rec)
    return kept, rejected


def funnel(kept, data, rejected) -> dict:
    reasons = Counter(r["rejected"].split(":")[0] for r in rejected)
    return {"instructions_kept": len(kept), "triplets": len(data), "rejected": dict(sorted(reasons.items()))}


def check_inputs(cfg) -> None:
    """Validate the names of the backend, retriever and filters, the seeds and the corpus before anything is written
    or an engine starts (the built-in `check_job`)."""
    registry.require(registry.backend(cfg.backend), f"selfspec.backend: {cfg.backend!r}")
    cfg.backend_settings()  # backend_options checked against the backend's own Options
    if cfg.corpus:
        registry.factory("retriever", cfg.retriever, registry.retrievers())
    filter_specs(cfg.filters)
    seeds = load_seeds(cfg.seeds)
    need = max(cfg.instruction_demos, cfg.response_demos)
    if len(seeds) < need:
        raise SelfSpecError(
            f"{cfg.seeds}: {len(seeds)} seed task(s), but selfspec.instruction_demos="
            f"{cfg.instruction_demos} and response_demos={cfg.response_demos} need at least {need}: "
            "add seed tasks or lower the demos"
        )
    if cfg.corpus:
        load_corpus(cfg.corpus, cfg.corpus_text_field)


def run_pipeline(job, backend, progress: bool = True) -> Generated:
    """Run (or resume) the pipeline in its run directory (rounds and chunks, written as they are made); the
    runner writes the result's files."""
    cfg = job.config
    inputs, run_dir = job.inputs, job.dir
    seeds = load_seeds(cfg.seeds)
    prompt_format = resolve_prompt_format(cfg.prompt_format, backend)
    start = time.time()
    if not (run_dir / rundirs.INPUTS).is_file():
        fileio.write_json(run_dir / rundirs.INPUTS, inputs)
    extended = [] if cfg.previous_round else rundirs.extend_from(run_dir, inputs)
    if cfg.previous_round:
        kept, rejected, stage1 = reuse_instructions(Path(cfg.previous_round.run_dir))
    else:
        kept, rejected, stage1 = brainstorm(job, run_dir, backend, prompt_format, seeds, progress)
    if not kept:
        raise SelfSpecError(
            f"selfspec: zero instructions survived the filters; funnel: {funnel(kept, [], rejected)}. "
            f"See the raw generations in {run_dir / 'instructions'}"
        )
    data, rejected_r, stage2 = respond(job, run_dir, backend, prompt_format, seeds, kept, progress)
    rejected += rejected_r
    counts = funnel(kept, data, rejected)
    if not data:
        raise SelfSpecError(f"selfspec: zero triplets survived the filters; funnel: {counts}. See {run_dir}")
    if len(kept) < cfg.num_instructions:
        print(f"selfspec: reached {len(kept)} of {cfg.num_instructions} instructions after max_rounds={cfg.max_rounds}")
    generated = stage1["tokens"] + stage2["tokens"]
    gen_seconds = stage1["seconds"] + stage2["seconds"]
    manifest = Manifest(
        run_key=job.key,
        inputs=inputs,
        model=job.model,
        backend=getattr(backend, "name", type(backend).__name__),
        prompt_format=prompt_format,
        counts={**counts, "requested": cfg.num_instructions, "seeds": len(seeds)},
        stages={"instructions": stage1, "responses": stage2},
        versions=versions(),
        previous_round=cfg.previous_round.model_dump() if cfg.previous_round else None,
        extended_from=extended,
        recipe=job.recipe,
        drift={"reference": "seeds", **drift(data, [f"{s['instruction']} {s['input']} {s['output']}" for s in seeds])},
        tokens_per_second=round(generated / gen_seconds, 1) if gen_seconds else None,
        wall_seconds=round(time.time() - start, 2),
    )
    return Generated(data, rejected, kept, manifest)


def seeds_only_run(job) -> Generated:
    """The seeds-only control: the seed tasks themselves are the training data (no generation, no engine); the
    training format is decided from the tokenizer as for a generated run."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from .backends.base import chat_model

    cfg = job.config
    seeds = load_seeds(cfg.seeds)
    tokenizer = AutoTokenizer.from_pretrained(job.model, trust_remote_code=cfg.trust_remote_code)
    model = SimpleNamespace(
        chat_capable=bool(getattr(tokenizer, "chat_template", None)), chat_model=chat_model(tokenizer, job.model)
    )
    data = [{"id": s["id"], **{f: s[f] for f in ALPACA_FIELDS}} for s in seeds]
    none = {"tokens": 0, "seconds": 0.0}
    manifest = Manifest(
        run_key=job.key,
        inputs=job.inputs,
        model=job.model,
        backend=None,
        seeds_only=True,
        prompt_format=resolve_prompt_format(cfg.prompt_format, model),
        versions=versions(),
        recipe=job.recipe,
        counts={**funnel(data, data, []), "requested": 0, "seeds": len(seeds)},
        stages={"instructions": {"rounds": 0, "prompts": 0, **none}, "responses": {"chunks": 0, **none}},
    )
    return Generated(data, [], data, manifest)
