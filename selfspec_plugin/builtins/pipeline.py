from ..hookspecs import hookimpl


@hookimpl(trylast=True)
def generate_dataset(job, backend, progress):
    from ..pipeline import run_pipeline

    return run_pipeline(job, backend, progress)
