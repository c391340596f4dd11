"""`selfspec eval`: held-out tasks (tasks.py, loaders registered through the `register_tasks` hook), their
scoring (scoring.py) and the run over the base model and any number of adapters on one engine (run.py)."""

from .run import evaluate, evaluate_recipe, model_specs, plan, subsample, trained_format
from .scoring import summarize, task_scores
from .tasks import Task, load_tasks

__all__ = [
    "Task",
    "evaluate",
    "evaluate_recipe",
    "load_tasks",
    "model_specs",
    "plan",
    "subsample",
    "summarize",
    "task_scores",
    "trained_format",
]
