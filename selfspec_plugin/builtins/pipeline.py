from ..hookspecs import hookimpl


@hookimpl(trylast=True)
def check_job(job):
    from ..pipeline import check_inputs

    check_inputs(job.config)
    return True


@hookimpl(trylast=True)
def generate_dataset(job, backend, progress):
    from ..pipeline import run_pipeline

    return run_pipeline(job, backend, progress)
