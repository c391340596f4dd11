from ..hookspecs import hookimpl


@hookimpl
def register_backends(register):
    from ..backends.vllm import VLLMBackend

    register("vllm", VLLMBackend)
