from ..hookspecs import hookimpl
from ..pipeline import check_inputs, run_pipeline, seeds_only_run


@hookimpl(trylast=True)
def check_job(job):
    check_inputs(job)
    return True


@hookimpl(trylast=True)
def generate_dataset(job, backend, progress):
    if job.config.seeds_only:  # the control: the seeds are the data (the runner started no engine: backend is None)
        return seeds_only_run(job)
    return run_pipeline(job, backend, progress)
