"""Known third-party noise, kept out of what selfspec prints (issue 32): the one list of it, and the three places
it is dropped, each where selfspec starts a process:

- in our own Python processes (the `selfspec` commands, the generator/eval child, the Axolotl plugin once it is
  loaded): logging and warnings filters, installed before the libraries are imported where we can;
- the child's stderr, read by its parent line by line: what no Python filter reaches (nanobind's exit report is
  printed by C++ during interpreter shutdown, after every Python hook has run);
- `python quiet.py CMD...` (`make demo` runs `axolotl train` through it): the same line filter on a command's
  stdout and stderr, for the lines Axolotl's process prints before it loads the plugin.

Only lines matching an entry of NOISE are dropped; everything else (real warnings, Axolotl's banner and config)
passes unchanged. `SELFSPEC_VERBOSE=1` (`selfspec --verbose ...`) turns all of it off.

Standard library only, and no package-relative imports: `filter_stderr` runs this file as a script with `python -I`
so that the filter process starts in milliseconds.
"""

from __future__ import annotations

import logging
import os
import re
import select
import subprocess
import sys
import threading
import warnings
from dataclasses import dataclass

VERBOSE_ENV = "SELFSPEC_VERBOSE"


@dataclass(frozen=True)
class Noise:
    pattern: str  # a regular expression searched in one line of output
    why: str  # why it is noise: nothing a user of selfspec can or needs to act on
    logger: str | None = None  # the logger that emits it (filtered at the source in our own processes)
    warning: bool = False  # a Python warning: the source line printed under it goes with it


NOISE = (
    Noise(
        r"Failed to load \S*torchao/_C\w*\.\S*so\b",
        "torchao ships kernels built for other Pythons and GPUs (`_C_mxfp8` for CPython 3.10, `_C_cutlass_90a` for "
        "Hopper GPUs); on this machine it runs without them, as it says it does",
        logger="torchao",
    ),
    Noise(
        r"Calling register_constant\(\) on Enum subclasses is deprecated",
        "torchao registers its enums with torch's pytree the old way: a note for torchao's developers",
        logger="torch.utils._pytree",
    ),
    Noise(
        r"Skipping publisher trust check for 'kernels-community/",
        "bitsandbytes asks the hub for an optional CPU kernel; selfspec runs offline by design (docs/install.md)",
        warning=True,
    ),
    Noise(
        r"Failed to load CPU gemm_4bit_forward from kernels-community",
        "the same optional kernel: bitsandbytes falls back to its own 4-bit CPU matmul, which the demo trains with",
        logger="bitsandbytes.backends.cpu.ops",
    ),
    Noise(
        r"^nanobind: leaked \d+ (instances|types|functions)!|^ - leaked (instance|type|function) |"
        r"^ - \.\.\. skipped remainder$|"
        r"^nanobind: this is likely caused by a reference counting issue|"
        r"^See https://nanobind\.readthedocs\.io/en/latest/refleaks\.html",
        "triton's nanobind bindings list the objects still alive when the interpreter exits (about 29 lines at the "
        "generator's exit): a report for triton's developers, after all work is done",
    ),
)
_NOISE_RE = re.compile("|".join(f"(?:{n.pattern})" for n in NOISE).encode())
_PIECE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)")  # one line with its end
_WARNING_RE = re.compile("|".join(f"(?:{n.pattern})" for n in NOISE if n.warning).encode())


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _NOISE_RE.search(record.getMessage().encode(errors="replace"))


def install() -> None:
    """Logging and warnings filters for NOISE in this process (once; not when verbose). Installed before the
    libraries are imported, they drop the records at their source, whatever handler would have printed them."""
    if verbose() or getattr(install, "done", False):
        return
    install.done = True
    drop = _DropNoise()
    for noise in NOISE:
        if noise.logger:
            logging.getLogger(noise.logger).addFilter(drop)
        if noise.warning:  # (warnings match the message's start)
            warnings.filterwarnings("ignore", message=noise.pattern)


class LineFilter:
    """Drops NOISE lines from a byte stream fed in arbitrary chunks. A line ends at `\\n`, or at `\\r` (a progress
    bar redrawing itself); an unfinished line is held until it ends or `partial()` releases it."""

    def __init__(self) -> None:
        self.pending = b""
        self.continuation = None  # after a dropped Python warning: its indented source line (then an empty one) too

    def feed(self, chunk: bytes) -> bytes:
        self.pending += chunk
        pieces = _PIECE.findall(self.pending)
        self.pending = self.pending[sum(map(len, pieces)) :]
        return b"".join(self._keep(piece) for piece in pieces)

    def _keep(self, piece: bytes) -> bytes:
        line = piece.rstrip(b"\r\n")
        if self.continuation == "source" and line[:1] in (b" ", b"\t"):
            self.continuation = "blank"  # (logged through `logging.captureWarnings`, an empty line ends it)
            return b""
        if self.continuation == "blank" and not line:
            self.continuation = None
            return b""
        self.continuation = None
        if _NOISE_RE.search(line):
            self.continuation = "source" if _WARNING_RE.search(line) else None
            return b""
        return piece

    def partial(self) -> bytes:
        """The unfinished line so far, passed through (a progress bar waiting for its next redraw)."""
        text, self.pending = self.pending, b""
        return b"" if _NOISE_RE.search(text) else text


def pump(src: int, dst: int, idle: float = 0.1) -> None:
    """Copy file descriptor `src` to `dst` until end of file, without NOISE lines. A line left unfinished for
    `idle` seconds is passed on as it is, so a progress bar still moves."""
    lines = LineFilter()
    while True:
        ready, _, _ = select.select([src], [], [], idle)
        if not ready:
            _write(dst, lines.partial())
            continue
        chunk = os.read(src, 65536)
        if not chunk:
            _write(dst, lines.partial())
            return
        _write(dst, lines.feed(chunk))


def _write(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def run(cmd: list[str], **kwargs) -> int:
    """Run `cmd` with its stderr filtered onto ours; its exit status (its stdout is left alone)."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, **kwargs)
    with proc:
        pump(proc.stderr.fileno(), 2)  # (fd 2, as the child would inherit it: sys.stderr may be a wrapper)
    return proc.wait()


def filter_stderr() -> None:
    """From here on, this process's stderr (file descriptor 2) goes through a filter process onto the terminal: it
    outlives this interpreter, so it also drops what is printed during its shutdown (nanobind's report). Where
    stdout is the same terminal or file, it goes through the same pipe, so that the two stay in the order written
    (`selfspec generate`'s summary, then the path); stdout redirected elsewhere is left alone."""
    if sys.stderr is None:  # started without stderr (closed by the caller): nothing to filter
        return
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    same = sys.stdout is not None and os.path.samestat(os.fstat(1), os.fstat(2))  # one pipe keeps their order
    terminal = os.dup(2)
    filt = subprocess.Popen([sys.executable, "-I", __file__, "--stdin"], stdin=subprocess.PIPE, stdout=terminal)
    os.close(terminal)
    if same:
        os.dup2(filt.stdin.fileno(), 1)
    os.dup2(filt.stdin.fileno(), 2)
    filt.stdin.close()  # fd 2 is now the only writer: the filter ends when this process (and its children) do
    _filters.append(filt)  # (kept: not reported as a running process when the object would be collected)


_filters: list = []


def _wrap(cmd: list[str]) -> int:
    """`python quiet.py CMD...`: CMD with its stdout and stderr filtered (Axolotl logs to stdout)."""
    if verbose():
        os.execvp(cmd[0], cmd)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    threads = [
        threading.Thread(target=pump, args=(proc.stdout.fileno(), 1)),
        threading.Thread(target=pump, args=(proc.stderr.fileno(), 2)),
    ]
    for thread in threads:
        thread.start()
    while True:
        try:  # Ctrl-C reaches CMD too (one process group): wait for it to stop, and report its status
            code = proc.wait()
            break
        except KeyboardInterrupt:
            continue
    for thread in threads:
        thread.join()
    return code


if __name__ == "__main__":
    if sys.argv[1:] == ["--stdin"]:
        pump(0, 1)
        sys.exit(0)
    if len(sys.argv) < 2:
        sys.exit("usage: python -m selfspec_plugin.quiet COMMAND [ARGS...]  (COMMAND's output without known noise)")
    sys.exit(_wrap(sys.argv[1:]))
