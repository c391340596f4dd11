from ..backends.openai import OpenAIBackend
from ..backends.ray_replicas import RayBackend
from ..backends.transformers import TransformersBackend
from ..backends.vllm import VLLMBackend
from ..hookspecs import hookimpl


@hookimpl
def register_backends(register):
    register("vllm", VLLMBackend)
    register("openai", OpenAIBackend)
    register("transformers", TransformersBackend)
    register("ray", RayBackend)
