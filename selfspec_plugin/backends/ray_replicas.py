"""Ray backend (`selfspec.backend: ray`): vLLM engine replicas as Ray actors; each call's prompts split over them.

Each replica is selfspec's own vLLM backend in a Ray actor, placed by Ray: `tensor_parallel_size x
pipeline_parallel_size` GPUs per replica, on any node of the cluster (`selfspec.ray.address`), or a slice of
this machine's cores on CPU. A call's prompts are striped over the replicas (prompt i to replica i mod R), run
concurrently, and put back in order. Every request carries its own seed (`item_seed`), so what a prompt gets
does not depend on how many replicas there are or which one served it.

Why not Ray Data's LLM processor (`ray.data.llm`): it starts its engine actors for every dataset it runs, and
the pipeline calls the engine once per brainstorming round and once per response chunk (the units of novelty
filtering and of resumption), so every call would pay an engine start (docs/scaling.md has the measurement).
Here the engines start once per run.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from ..errors import SelfSpecError
from .base import Backend, Completion, Sampling, validated, vllm_lora_options
from .vllm import VLLMBackend


class RayOptions(BaseModel):
    """The `selfspec.ray:` block: vLLM engine replicas as Ray actors (docs/scaling.md); each replica gets the `vllm:`
    settings."""

    model_config = ConfigDict(extra="forbid")

    address: Optional[str] = Field(
        None, description="An existing Ray cluster ('auto', 'ray://host:10001'); unset: a local Ray on this machine."
    )
    replicas: Optional[int] = Field(
        None,
        gt=0,
        description="Engine replicas; default: the cluster's GPUs / (tensor x pipeline parallel size), 1 without GPUs.",
    )


def stripes(n: int, replicas: int) -> list[list[int]]:
    """Prompt indices per replica: i goes to replica i mod R (neighbouring prompts, often alike, are spread)."""
    return [list(range(r, n, replicas)) for r in range(replicas)]


def core_slices(cores: list[int], replicas: int) -> list[str]:
    """Disjoint core lists (vLLM's VLLM_CPU_OMP_THREADS_BIND syntax) so CPU replicas do not share cores."""
    if replicas > len(cores):
        raise SelfSpecError(
            f"selfspec.ray.replicas: {replicas} CPU replicas need {replicas} cores; this machine has {len(cores)}"
        )
    size = len(cores) // replicas
    return [",".join(str(c) for c in cores[r * size : (r + 1) * size]) for r in range(replicas)]


class Replica:
    """One engine; Ray runs it as an actor (`ray.remote(Replica)`)."""

    def __init__(self, model: str, options: dict):
        self.backend = VLLMBackend(model, options)

    def info(self) -> dict:
        import ray

        return {
            "chat_capable": self.backend.chat_capable,
            "chat_model": self.backend.chat_model,
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
        }

    def generate(self, prompts: list, sampling: Sampling, prompt_format: str, adapter: str | None) -> list[Completion]:
        return self.backend.generate(prompts, sampling, prompt_format, adapter)


class RayBackend(Backend):
    name = "ray"
    constrains_decoding = True  # its replicas are VLLMBackends
    stops_loops = True  # the same
    samples_top_p = True  # the same
    serves_adapters = True  # every replica is a vLLM engine
    slow_adapters_on_cpu = True
    adapter_options = staticmethod(vllm_lora_options)
    requires = {"ray": "pip install 'selfspec[ray]'", "vllm": "`make install` (CPU) or `make install-gpu` (CUDA)"}

    Options = RayOptions
    options_key = "ray"

    @staticmethod
    def settings(config) -> dict:
        """Every replica's engine options (the `vllm:` block) and the cluster's (`ray:`)."""
        return {
            **validated(VLLMBackend, "vllm", config.vllm),
            "ray": validated(RayBackend, "ray", config.ray),
        }

    def __init__(self, model: str, options: dict):
        try:
            import ray
        except ImportError:
            raise SelfSpecError("selfspec.backend ray: Ray is not installed (pip install 'selfspec[ray]')") from None
        settings = dict(options)
        cluster = settings.pop("ray", None) or {}
        self.started_ray = not ray.is_initialized()
        if self.started_ray:  # address None: a local Ray on this machine; "auto" or ray://...: an existing cluster
            ray.init(
                address=cluster.get("address"),
                include_dashboard=False,
                log_to_driver=True,
                logging_level="WARNING",
                configure_logging=True,
            )
        self.ray, self.replicas, self.served = ray, [], []
        try:
            self._start(model, settings, cluster)
        except BaseException:
            self.close()
            raise

    def _start(self, model: str, settings: dict, cluster: dict) -> None:
        ray = self.ray
        per_replica = (settings.get("tensor_parallel_size") or 1) * (settings.get("pipeline_parallel_size") or 1)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = cluster.get("replicas") or max(1, gpus // per_replica)
        if gpus:
            if count * per_replica > gpus:
                raise SelfSpecError(
                    f"selfspec.ray.replicas: {count} replicas x {per_replica} GPUs each, "
                    f"but the Ray cluster has {gpus} GPUs"
                )
            actor_options = [{"num_gpus": per_replica}] * count
        else:  # CPU: one Ray CPU each; several replicas on this machine get disjoint cores
            local = cluster.get("address") is None and count > 1
            binds = core_slices(sorted(os.sched_getaffinity(0)), count) if local else [None] * count
            actor_options = [
                {"num_cpus": 1, **({"runtime_env": {"env_vars": {"VLLM_CPU_OMP_THREADS_BIND": b}}} if b else {})}
                for b in binds
            ]
        remote = ray.remote(Replica)
        self.replicas = [remote.options(**o).remote(model, settings) for o in actor_options]
        self.info = self._get([r.info.remote() for r in self.replicas])  # waits until every engine is up
        self.chat_capable, self.chat_model = self.info[0]["chat_capable"], self.info[0]["chat_model"]
        self.served = [0] * count  # requests per replica, for the summary and the tests

    def _get(self, refs: list):
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayError as exc:
            raise SelfSpecError(f"selfspec.backend ray: a replica failed: {str(exc)[-1500:]}") from None

    def generate(
        self, prompts: list, sampling: Sampling, prompt_format: str, adapter: str | None = None
    ) -> list[Completion]:
        """`adapter`: a LoRA adapter directory every replica can read (a shared filesystem on a cluster)."""
        parts = [idx for idx in stripes(len(prompts), len(self.replicas)) if idx]
        pending = [
            self.replicas[r].generate.remote([prompts[i] for i in idx], sampling, prompt_format, adapter)
            for r, idx in enumerate(parts)
        ]
        out: list[Completion | None] = [None] * len(prompts)
        for r, (idx, done) in enumerate(zip(parts, self._get(pending))):
            self.served[r] += len(idx)
            for i, completion in zip(idx, done):
                out[i] = completion
        return out

    def close(self) -> None:
        if any(self.served):
            print(
                f"selfspec: ray: {len(self.replicas)} replicas served {', '.join(map(str, self.served))} requests",
                file=sys.stderr,
            )
        for replica in self.replicas:
            self.ray.kill(replica)
        self.replicas = []
        if self.started_ray and self.ray.is_initialized():
            self.ray.shutdown()
