"""The one error type selfspec raises for bad input; its message is meant for the user as is. It is defined in
fileio.py, the bottom of the stack (which imports nothing of selfspec), and imported from here everywhere else."""

from .fileio import SelfSpecError

__all__ = ["SelfSpecError"]
