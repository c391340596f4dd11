"""Loaded into a real `selfspec generate` process by tests/test_faults.py (`python -c "import fault_shim; ..."`).

It makes the process SIGKILL itself at one chosen file write, so a test can kill a run at an exact point:
SELFSPEC_KILL_AT=<file name>:<when>, with `when` one of
  before  - just before the file is written,
  torn    - mid-write: half of the bytes are in the temporary file when the process dies,
  after   - right after the file was written (and renamed into place),
  pause   - right after the file was written, the process stops itself (SIGSTOP) for the test to kill it
            from outside (tests/test_e2e.py), whatever is still running in it.
"""

import os
import signal
import tempfile

from selfspec_plugin import fileio

NAME, WHEN = os.environ["SELFSPEC_KILL_AT"].rsplit(":", 1)
_write = fileio._atomic_write


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _atomic_write(path, data):
    if path.name != NAME:
        return _write(path, data)
    if WHEN == "before":
        _die()
    if WHEN == "torn":
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, _ = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.write(fd, data[: len(data) // 2])
        _die()
    _write(path, data)
    if WHEN == "pause":
        os.kill(os.getpid(), signal.SIGSTOP)
        return
    _die()


fileio._atomic_write = _atomic_write
