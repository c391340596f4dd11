from ..hookspecs import hookimpl


@hookimpl
def register_tasks(register):
    from ..eval.tasks import BUILTIN

    for name, loader in BUILTIN.items():
        register(name, loader)
