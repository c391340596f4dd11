from ..hookspecs import hookimpl


@hookimpl(trylast=True)
def check_job(job):
    from ..pipeline import check_inputs

    check_inputs(job)
    return True


@hookimpl(trylast=True)
def generate_dataset(job, backend, progress):
    from ..pipeline import run_pipeline, seeds_only_run

    if job.config.seeds_only:  # the control: the seeds are the data (the runner started no engine: backend is None)
        return seeds_only_run(job)
    return run_pipeline(job, backend, progress)
