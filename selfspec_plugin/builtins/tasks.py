from ..eval.tasks import BUILTIN
from ..hookspecs import hookimpl


@hookimpl
def register_tasks(register):
    for name, loader in BUILTIN.items():
        register(name, loader)
