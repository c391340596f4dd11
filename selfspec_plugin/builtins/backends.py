from ..hookspecs import hookimpl


@hookimpl
def register_backends(register):
    from ..backends.openai import OpenAIBackend
    from ..backends.transformers import TransformersBackend
    from ..backends.vllm import VLLMBackend

    register("vllm", VLLMBackend)
    register("openai", OpenAIBackend)
    register("transformers", TransformersBackend)
