"""The self-specialization pipeline: seeds -> brainstormed (instruction, input) -> responses -> filters.

It runs without Axolotl. Work is done in chunks that are written atomically to the run directory, so a
killed run resumes where it stopped and, since every request's seed derives from the run seed and the
item's id, produces the same final dataset as an uninterrupted run.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from . import fileio, registry
from .backends.base import Completion, Sampling, ability, chat_model, is_chat_model
from .dataset import INSTRUCTIONS, Generated, Manifest, is_complete
from .errors import SelfSpecError
from .filters import drift, run_checks, seed_texts
from .prompts import brainstorm_prompt, parse_brainstorm, prompt_digest, response_prompt
from .provenance import versions
from .retrieval import load_corpus, run_corpus

ALPACA_FIELDS = ("instruction", "input", "output")


def resolve_prompt_format(prompt_format: str, backend) -> str:
    """`auto`: chat prompts for a chat/instruct model (`backend.chat_model`, see backends.chat_model), completion
    prompts for a base model even when its tokenizer carries a template. The training format follows it."""
    if prompt_format == "chat" and not backend.chat_capable:
        raise SelfSpecError(
            "selfspec.prompt_format: 'chat' needs a tokenizer with a chat template; this model has none"
        )
    if prompt_format == "auto":
        return "chat" if is_chat_model(backend) else "completion"
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


def filter_settings(cfg, seeds: list[dict]) -> dict:
    """What a run's filters are built from: its settings, the seeds' instructions (novelty) and texts (off-domain)."""
    return {**cfg.model_dump(), "existing": [s["instruction"] for s in seeds], "reference": seed_texts(seeds)}


def sample_seeds(seeds: list[dict], k: int, key: str) -> list[dict]:
    return random.Random(key).sample(seeds, min(k, len(seeds)))


class Stats:
    """A stage's tokens: every completion the run used (each prompt is asked for once), whether this process
    generated it or an earlier, interrupted one did, so a resumed run reports the whole run; and the tokens and
    seconds this process spent generating its own (its speed)."""

    def __init__(self):
        self.tokens, self.generated, self.seconds = 0, 0, 0.0

    def add(self, completions, seconds: float) -> None:
        self.generated += sum(c.tokens for c in completions)
        self.seconds += seconds

    def use(self, rows: list[dict]) -> None:
        self.tokens += sum(row["tokens"] for row in rows)


def _generate(
    files: list[tuple[Path, list]],
    backend,
    sampling,
    prompt_format,
    stats: Stats,
    adapter: str | None = None,
    enough=None,
    quota: int | None = None,
    window: int | None = None,
) -> list[list[dict]]:
    """Load finished files (a response chunk, a call's brainstorming rounds) from disk, or generate their prompts
    in one backend call and write each file atomically.

    Rows on disk are reused by prompt id when they answered the same prompt (each row records its prompt's
    digest). Files that hold exactly these prompts are returned as they are; a file that holds some of them
    (another `chunk_size`, the short last round of a smaller run being extended, a chunk that grows round by round
    under `num_triplets`) has only the missing ones generated and keeps the rows it had.
    `enough` (a function of the finished completions by prompt id, the rows it had first, stopping at `quota`) is
    passed on to a backend that `stops_early`, and `window` to one that `refills`; the requests it stops are rows
    too (finish_reason "abort", with their `quota`), reused only by a call that stops the same whole set of files at
    the same quota (a resumed run); any other generates them again.
    """
    prompts = [p for _, group in files for p in group]
    digests = {p.id: prompt_digest(p) for p in prompts}
    on_disk = [
        {
            r["id"]: r
            for r in (fileio.read_jsonl(path) if path.is_file() else [])
            if r["id"] not in digests or r.get("prompt") == digests[r["id"]]
        }
        for path, _ in files
    ]
    done = {k: r for rows in on_disk for k, r in rows.items() if k in digests}
    same_stop = enough is not None and len(done) == len(digests)
    done = {k: r for k, r in done.items() if r["finish_reason"] != "abort" or (same_stop and r.get("quota") == quota)}
    todo = [p for p in prompts if p.id not in done]
    if todo:
        start = time.perf_counter()
        had = {k: Completion(r["text"], r["finish_reason"], r["tokens"]) for k, r in done.items()}
        extra = {
            **({"adapter": adapter} if adapter else {}),
            **({"enough": lambda new: enough({**had, **{todo[i].id: c for i, c in new.items()}})} if enough else {}),
            **({"window": window} if window else {}),
        }
        completions = backend.generate(todo, sampling, prompt_format, **extra)
        stats.add(completions, time.perf_counter() - start)
        new = {
            p.id: {
                "id": p.id,
                "text": c.text,
                "finish_reason": c.finish_reason,
                "tokens": c.tokens,
                "prompt": digests[p.id],
                **({"quota": quota} if c.finish_reason == "abort" else {}),
            }
            for p, c in zip(todo, completions)
        }
        done.update(new)
        for (path, group), rows in zip(files, on_disk):
            if any(p.id in new for p in group):
                kept = {k: r for k, r in rows.items() if k not in digests or k in done}
                fileio.write_jsonl(path, list({**kept, **{p.id: new[p.id] for p in group if p.id in new}}.values()))
    rows = [[done[p.id] for p in group] for _, group in files]
    stats.use([row for group in rows for row in group])
    return rows


def draw(request: int, samples: int) -> int:
    """The request whose demos a request uses: `samples` consecutive requests (`instruction_samples`,
    `response_samples`) share the first one's draw (with 1, each its own:
    the default keeps the run keys and data of recipes that do not set them)."""
    return request - request % samples


def round_size(per_round: int, missing: int, kept: int, prompted: int, margin: float = 1.25) -> int:
    """Prompts for the next brainstorming round: `prompts_per_round`, or fewer when the yield so far says fewer
    will do (`missing` instructions, or triplets, at `kept / prompted` per prompt, plus a margin), so that the
    last round does not write a full round of items past the quota. A function of the finished rounds only, so
    a resumed run asks for the same rounds."""
    if not kept:
        return per_round
    return max(1, min(per_round, math.ceil(margin * missing * prompted / kept)))


def fit_prompts(specs: list[tuple], build, backend, prompt_format: str, max_tokens: int) -> tuple[list, int]:
    """Prompts that fit the generator's context with room for `max_tokens`: an over-long one loses its retrieved
    documents (the lowest-ranked first), then its demos (the last first), never its header or its task; one that
    does not fit even then is None. `specs` are (demos, documents) pairs and `build(i, demos, documents)` makes
    prompt i. Returns the prompts and how many were shortened. A backend that cannot count tokens (it declares no
    `prompt_tokens`) gets the prompts as built."""
    prompts = [build(i, demos, docs) for i, (demos, docs) in enumerate(specs)]
    count = ability(backend, "prompt_tokens")
    limit = ability(backend, "context_tokens")
    if count is None or limit is None:
        return prompts, 0
    budget, shortened = limit - max_tokens, 0
    for i, n in enumerate(count(prompts, prompt_format)):
        demos, docs = specs[i]
        if n <= budget:
            continue
        shortened += 1
        while n > budget and (docs or demos):
            demos, docs = (demos, docs[:-1]) if docs else (demos[:-1], docs)
            prompts[i] = build(i, demos, docs)
            n = count([prompts[i]], prompt_format)[0]
        if n > budget:
            prompts[i] = None
    return prompts, shortened


def checked_items(prompt, row: dict, checks: list) -> list[dict]:
    """The items of one brainstorming completion, each through `checks` (its `rejected`: a reason or None)."""
    items = parse_brainstorm(prompt.prefix, row["text"], row["finish_reason"] == "length")
    return [
        {"id": f"{row['id']}-{k}", **item, "rejected": item.get("rejected") or run_checks(checks, item)}
        for k, item in enumerate(items)
    ]


class Generation:
    """One run's two stages and what they have made so far. Brainstorming appends whole rounds of kept
    instructions, and the response stage answers the kept instructions from a position on, in chunks of
    `chunk_size` positions, so an answer's chunk and demos depend on its position alone: the rounds and chunks
    are the same whether the stages alternate (`num_triplets`) or follow each other (`num_instructions`)."""

    def __init__(self, job, run_dir: Path, backend, prompt_format: str, seeds: list[dict]):
        cfg = self.cfg = job.config
        self.run_dir, self.backend, self.prompt_format, self.seeds = run_dir, backend, prompt_format, seeds
        settings = filter_settings(cfg, seeds)
        self.instruction_checks = build_checks("instruction", settings, cfg.filters)
        self.response_checks = build_checks("response", settings, cfg.filters)
        abilities = {
            "stop_loops": cfg.stop_loops and ability(backend, "stops_loops"),
            "fast_top_p": cfg.fast_top_p and ability(backend, "samples_top_p"),
        }
        self.instruction_sampling = Sampling(
            cfg.temperature, cfg.top_p, cfg.instruction_max_tokens, cfg.seed, **abilities
        )
        self.response_sampling = Sampling(cfg.response_temperature, 1.0, cfg.response_max_tokens, cfg.seed, **abilities)
        self.adapter = cfg.previous_round.adapter if cfg.previous_round else None
        self.grammar = cfg.brainstorm_grammar and ability(backend, "constrains_decoding")
        self.stops_early = cfg.stop_at_quota and ability(backend, "stops_early")
        self.per_call = cfg.rounds_per_call if ability(backend, "refills") else 1
        self.settings = settings
        self.retriever = None
        if cfg.corpus:
            docs = run_corpus(cfg, backend)
            self.retriever = registry.make_retriever(cfg.retriever, docs, run_dir / "index")
        self.quota = cfg.num_triplets or cfg.num_instructions
        self.kept: list[dict] = []  # kept instructions, in order: their positions fix their chunks and demos
        self.data: list[dict] = []
        self.rejected: list[dict] = []
        self.shortened = {"instructions": 0, "responses": 0}
        self.brainstormed, self.answered, self.rounds, self.prompted, self.stopped = Stats(), Stats(), 0, 0, 0
        self.calls = 0  # engine calls of brainstorming: a call holds `rounds_per_call` rounds

    def can_stop(self, size: int, need: int | None) -> bool:
        """A brainstorming call stops at the quota only where it can reach it: `need` at most its items
        (`instruction_items` per prompt); earlier calls of a large run run whole, without the filters' second pass."""
        return bool(need) and self.stops_early and need <= size * self.cfg.instruction_items

    def until_kept(self, prompts: list, need: int):
        """`stop_at_quota`: a round's `enough`: true once its completions, in the order they finished, have made
        `need` instructions that pass the instruction filters (a fresh set of them, holding the instructions kept so
        far). What the round keeps is then decided as for any round, in prompt order over its finished completions:
        the same count, unless two near-duplicates finished in the other order (then the run takes one more round)."""
        existing = self.settings["existing"] + [k["instruction"] for k in self.kept]
        checks = build_checks("instruction", {**self.settings, "existing": existing}, self.cfg.filters)
        by_id, seen, kept = {p.id: p for p in prompts}, set(), [0]
        order = {pid: i for i, pid in enumerate(by_id)}

        def enough(done: dict) -> bool:
            for pid in sorted(done.keys() - seen, key=order.__getitem__):
                seen.add(pid)
                row = {"id": pid, "text": done[pid].text, "finish_reason": done[pid].finish_reason}
                kept[0] += sum(not item["rejected"] for item in checked_items(by_id[pid], row, checks))
            return kept[0] >= need

        return enough

    def round_prompts(self, rnd: int, size: int) -> list:
        """Brainstorming round `rnd`'s `size` prompts that fit the context (the others rejected `prompt_too_long`)."""
        cfg = self.cfg
        grammar = cfg.instruction_max_tokens if self.grammar else None
        specs = [
            (
                sample_seeds(
                    self.seeds, cfg.instruction_demos, f"{cfg.seed}:demos:r{rnd}-p{draw(i, cfg.instruction_samples)}"
                ),
                (),
            )
            for i in range(size)
        ]
        prompts, shortened = fit_prompts(
            specs,
            lambda i, demos, _: brainstorm_prompt(f"r{rnd}-p{i}", demos, cfg.domain, cfg.instruction_items, grammar),
            self.backend,
            self.prompt_format,
            cfg.instruction_max_tokens,
        )
        self.shortened["instructions"] += shortened
        self.rejected += [
            {"stage": "instruction", "id": f"r{rnd}-p{i}", "rejected": "prompt_too_long"}
            for i, p in enumerate(prompts)
            if p is None
        ]
        return [p for p in prompts if p is not None]

    def brainstorm(self, sizes: list[int], need: int | None = None) -> int:
        """Brainstorm the next rounds, of these sizes, in one engine call (`rounds_per_call`); returns how many
        instructions they kept. With `need` (instructions still missing) and `stop_at_quota`, the call stops once its
        finished completions have made that many (`until_kept`); what it never started costs nothing and is not
        counted as prompted."""
        first = self.rounds
        self.rounds, self.calls = self.rounds + len(sizes), self.calls + 1
        files = [
            (self.run_dir / "instructions" / f"round-{rnd:05d}.jsonl", self.round_prompts(rnd, size))
            for rnd, size in enumerate(sizes, first)
        ]
        runnable = [p for _, group in files for p in group]
        stop = {"enough": self.until_kept(runnable, need), "quota": need} if self.can_stop(sum(sizes), need) else {}
        window = {"window": self.cfg.prompts_per_round} if len(sizes) > 1 else {}  # (a backend that `refills`)
        results = _generate(
            files, self.backend, self.instruction_sampling, self.prompt_format, self.brainstormed, **stop, **window
        )
        before, unstarted = len(self.kept), 0
        for (_, group), rows in zip(files, results):
            for prompt, row in zip(group, rows):
                if row["finish_reason"] == "abort":  # stopped at the quota: no item (its tokens counted)
                    self.stopped += row["tokens"] > 0
                    unstarted += row["tokens"] == 0
                    continue
                for item in checked_items(prompt, row, self.instruction_checks):
                    if item["rejected"]:
                        self.rejected.append({"stage": "instruction", **item})
                    else:  # the whole last round's passing items, as in the Alpaca reference: they are paid for
                        self.kept.append({key: value for key, value in item.items() if key != "rejected"})
        self.prompted += sum(sizes) - unstarted
        return len(self.kept) - before

    def answer(self, start: int, bar=None) -> None:
        """Answer the kept instructions from position `start` on (in an iterative round, with base + the
        previous round's adapter); a passing answer past the quota is `over_quota`."""
        cfg, size = self.cfg, self.cfg.chunk_size
        for c in range(start // size, math.ceil(len(self.kept) / size)):
            first = max(start, c * size)
            items = self.kept[first : (c + 1) * size]
            hits = (
                self.retriever.search([f"{it['instruction']} {it['input']}" for it in items], cfg.retrieval_k)
                if self.retriever
                else [[] for _ in items]
            )
            specs = [
                (
                    sample_seeds(
                        self.seeds,
                        cfg.response_demos,
                        f"{cfg.seed}:demos:{self.kept[draw(first + i, cfg.response_samples)]['id']}",
                    ),
                    tuple(h["text"] for h in found),
                )
                for i, found in enumerate(hits)
            ]
            prompts, shortened = fit_prompts(
                specs,
                lambda i, demos, docs: response_prompt(items[i]["id"], items[i], demos, cfg.domain, docs),
                self.backend,
                self.prompt_format,
                cfg.response_max_tokens,
            )
            self.shortened["responses"] += shortened
            runnable = [p for p in prompts if p is not None]
            rows = iter(
                _generate(
                    [(self.run_dir / "responses" / f"chunk-{c:05d}.jsonl", runnable)],
                    self.backend,
                    self.response_sampling,
                    self.prompt_format,
                    self.answered,
                    self.adapter,
                )[0]
            )
            for item, prompt, found in zip(items, prompts, hits):
                if prompt is None:
                    self.rejected.append({"stage": "response", **item, "output": "", "rejected": "prompt_too_long"})
                    continue
                row = next(rows)
                rec = {**item, "output": row["text"].strip(), "finish_reason": row["finish_reason"]}
                reason = run_checks(self.response_checks, rec) or (
                    "over_quota" if len(self.data) >= self.quota else None
                )
                if reason:
                    self.rejected.append({"stage": "response", **rec, "rejected": reason})
                else:
                    self.data.append(
                        {
                            "id": rec["id"],
                            **{f: rec[f] for f in ALPACA_FIELDS},
                            **({"docs": [h["id"] for h in found]} if self.retriever else {}),
                        }
                    )
            if bar is not None:
                bar.update(1)

    def stages(self, reused: dict | None = None) -> dict:
        instructions = reused or {
            "rounds": self.rounds,
            "calls": self.calls,
            "prompts": self.prompted,
            "stopped": self.stopped,
        }
        return {
            "instructions": {
                **instructions,
                **_totals(self.brainstormed),
                "shortened": self.shortened["instructions"],
            },
            "responses": {
                "chunks": math.ceil(len(self.kept) / self.cfg.chunk_size),
                **_totals(self.answered),
                "shortened": self.shortened["responses"],
            },
        }


def _totals(stats: Stats) -> dict:
    """A stage's tokens in the run; of them, those an earlier, interrupted process generated (its seconds are not
    known here: `seconds` is this process's generation time)."""
    return {
        "tokens": stats.tokens,
        "resumed_tokens": stats.tokens - stats.generated,
        "seconds": round(stats.seconds, 2),
    }


class RoundLog:
    """Progress for a log file (progress bars off: `--no-progress`, a run in the background): a line per
    brainstorming round this process generated, with the count so far; rounds a resumed run reads back from disk
    print nothing."""

    def __init__(self, gen: Generation, what: str, target: int, enabled: bool):
        self.gen, self.what, self.target, self.enabled = gen, what, target, enabled
        self.tokens, self.clock = self._generated(), time.perf_counter()

    def _generated(self) -> int:
        return self.gen.brainstormed.generated + self.gen.answered.generated

    def round(self, have: int) -> None:
        tokens, clock = self._generated(), time.perf_counter()
        if self.enabled and tokens > self.tokens:
            print(
                f"selfspec: round {self.gen.rounds}: {have} of {self.target} {self.what}, {tokens - self.tokens} "
                f"tokens in {clock - self.clock:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        self.tokens, self.clock = tokens, clock


def brainstorm_then_answer(gen: Generation, progress: bool) -> None:
    """`num_instructions`: brainstorm rounds until that many instructions are kept, then answer them all."""
    cfg = gen.cfg
    log = RoundLog(gen, "instructions", cfg.num_instructions, not progress)
    with tqdm(total=cfg.num_instructions, desc="selfspec: instructions", unit="instr", disable=not progress) as bar:
        while gen.rounds < cfg.max_rounds and len(gen.kept) < cfg.num_instructions:
            need, per_round = cfg.num_instructions - len(gen.kept), cfg.prompts_per_round
            rounds = min(gen.per_call, cfg.max_rounds - gen.rounds)
            size = round_size(per_round * rounds, need, len(gen.kept), gen.prompted)
            sizes = [min(per_round, size - start) for start in range(0, size, per_round)]
            bar.update(min(gen.brainstorm(sizes, need), bar.total - bar.n))
            log.round(len(gen.kept))
    chunks = math.ceil(len(gen.kept) / cfg.chunk_size)
    with tqdm(total=chunks, desc="selfspec: responses", unit="chunk", disable=not progress) as bar:
        gen.answer(0, bar)


def answer_each_round(gen: Generation, progress: bool) -> None:
    """`num_triplets`: after every brainstorming round, answer its instructions; the next round is sized from the
    triplets kept per prompt so far; stop when the target is met (exactly: the surplus is `over_quota`)."""
    cfg = gen.cfg
    log = RoundLog(gen, "triplets", cfg.num_triplets, not progress)
    with tqdm(total=cfg.num_triplets, desc="selfspec: triplets", unit="triplet", disable=not progress) as bar:
        while gen.rounds < cfg.max_rounds and len(gen.data) < cfg.num_triplets:
            size = round_size(cfg.prompts_per_round, cfg.num_triplets - len(gen.data), len(gen.data), gen.prompted)
            before = len(gen.kept)
            gen.brainstorm([size])
            gen.answer(before)
            bar.update(min(len(gen.data), bar.total) - bar.n)
            log.round(len(gen.data))


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


def check_inputs(job) -> None:
    """Validate the names of the backend, retriever and filters, the seeds and the corpus before anything is written
    or an engine starts (the built-in `check_job`, run once per run: a child process the runner started for a
    checked job does not check it again). The seeds are the job's (read once); the corpus is read here to check
    its content, and again where the run cuts it into chunks in the generator's own tokens."""
    cfg = job.config
    registry.require(registry.backend(cfg.backend), f"selfspec.backend: {cfg.backend!r}")
    registry.backend_settings(cfg)  # its options checked against the backend's own options model
    if cfg.corpus:
        registry.factory("retriever", cfg.retriever, registry.retrievers())
    filter_specs(cfg.filters)
    seeds = job.seeds
    need = max(cfg.instruction_demos, cfg.response_demos)
    if len(seeds) < need:
        raise SelfSpecError(
            f"{cfg.seeds}: {len(seeds)} seed task(s), but selfspec.instruction_demos="
            f"{cfg.instruction_demos} and response_demos={cfg.response_demos} need at least {need}: "
            "add seed tasks or lower the demos"
        )
    if cfg.corpus:
        load_corpus(cfg.corpus, cfg.corpus_text_field)


def reuse_instructions(run_dir: Path) -> tuple[list[dict], dict]:
    """Iterative rounds: the instructions a finished earlier run kept (its `instructions.jsonl`)."""
    path = run_dir / INSTRUCTIONS
    if not (is_complete(run_dir) and path.is_file()):
        raise SelfSpecError(f"selfspec.previous_round.run_dir: {run_dir} is not a finished run with instructions.jsonl")
    return fileio.read_jsonl(path), {"rounds": 0, "prompts": 0, "reused_from": str(run_dir)}


def run_pipeline(job, backend, progress: bool = True) -> Generated:
    """Run (or resume) the pipeline in its run directory (rounds and chunks, written as they are made); the
    runner writes the result's files."""
    cfg = job.config
    inputs, run_dir, seeds = job.inputs, job.dir, job.seeds
    prompt_format = resolve_prompt_format(cfg.prompt_format, backend)
    start = time.time()
    extended = job.begin()  # (the run layer's: inputs.json, and the rounds and chunks of runs it extends)
    gen = Generation(job, run_dir, backend, prompt_format, seeds)
    reused = None
    if cfg.previous_round:
        gen.kept, reused = reuse_instructions(Path(cfg.previous_round.run_dir))
        gen.answer(0)
    elif cfg.num_triplets:
        answer_each_round(gen, progress)
    else:
        brainstorm_then_answer(gen, progress)
    counts = funnel(gen.kept, gen.data, gen.rejected)
    if cfg.num_triplets and len(gen.data) < cfg.num_triplets:
        print(f"selfspec: kept {len(gen.data)} of {cfg.num_triplets} triplets after max_rounds={cfg.max_rounds}")
    elif not (cfg.num_triplets or cfg.previous_round) and len(gen.kept) < cfg.num_instructions:
        print(
            f"selfspec: reached {len(gen.kept)} of {cfg.num_instructions} instructions "
            f"after max_rounds={cfg.max_rounds}"
        )
    report_shortened(gen.shortened, ability(backend, "context_tokens"))
    stages = gen.stages(reused)
    generated = sum(stages[s]["tokens"] - stages[s]["resumed_tokens"] for s in ("instructions", "responses"))
    gen_seconds = stages["instructions"]["seconds"] + stages["responses"]["seconds"]
    manifest = Manifest(
        run_key=job.key,
        inputs=inputs,
        model=job.model,
        backend=ability(backend, "name") or type(backend).__name__,
        prompt_format=prompt_format,
        counts={
            **counts,
            "requested": cfg.num_triplets or cfg.num_instructions,
            "requested_unit": "triplets" if cfg.num_triplets else "instructions",
            "seeds": len(seeds),
        },
        stages=stages,
        versions=versions(),
        previous_round=cfg.previous_round.model_dump() if cfg.previous_round else None,
        extended_from=extended,
        recipe=job.recipe,
        drift={
            "reference": "seeds",
            **drift(gen.data, seed_texts(seeds)),
        },
        tokens_per_second=round(generated / gen_seconds, 1) if gen_seconds else None,
        wall_seconds=round(time.time() - start, 2),
        unfinished=None if gen.data else f"zero {'triplets' if gen.kept else 'instructions'} survived the filters",
    )
    return Generated(gen.data, gen.rejected, gen.kept, manifest)


def report_shortened(shortened: dict, context: int | None) -> None:
    """Say once, at the end of a run, how many prompts lost retrieved text or demos to fit the model's context."""
    if any(shortened.values()):
        print(
            f"selfspec: {shortened['instructions']} brainstorming and {shortened['responses']} response prompt(s) "
            f"did not fit the model's {context}-token context with room for the answer: they lost retrieved "
            "documents, then demos, never the header or the task (manifest: stages.*.shortened)",
            file=sys.stderr,
        )


def seeds_only_run(job) -> Generated:
    """The seeds-only control: the seed tasks themselves are the training data (no generation, no engine); the
    training format is decided from the tokenizer as for a generated run."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    cfg, seeds = job.config, job.seeds
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
