"""Files, read and written safely. The bottom of the stack: imports nothing of selfspec, and defines the one
error type (errors.py names it for everyone else). Seeds, corpora, tasks and runs all read and write through here.

Writes are atomic (a temporary file in the same folder, fsync, rename): a reader sees the old file or the new
one, never half of one. Reads decode UTF-8 line by line and name the file, line and column of any problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator


class SelfSpecError(Exception):
    """A problem with the user's input or environment, explained in the message (file:line or field); meant for
    the user as is. Import it from selfspec_plugin.errors."""


UMASK = os.umask(0o22)
os.umask(UMASK)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_dir(path: Path) -> Path:
    """mkdir -p, or a SelfSpecError naming the folder and why (a read-only file system, no permission, ...)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SelfSpecError(
            f"cannot create the folder {path}: {exc.strerror or exc} (set output_dir or "
            "selfspec.runs_dir to a writable place)"
        ) from None
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, rename: readers see the old file or the new one."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SelfSpecError(
                f"could not write {path}: {exc.strerror or exc}; the files written before it are "
                "intact and a rerun resumes from them"
            ) from exc
        raise


# json.dumps leaves these raw, and str.splitlines (and some editors) break lines at them: escape them so that
# every reader sees one record per line. (Control characters below U+0020 are already escaped by json.)
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    _atomic_write(
        path, "".join(json.dumps(r, ensure_ascii=False).translate(_LINE_BREAKS) + "\n" for r in records).encode()
    )


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, text.encode())


def write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, data)


def write_json(path: Path, obj: dict) -> None:
    _atomic_write(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())


def resolved_note(path: str | Path) -> str:
    """Where a relative path was looked for: a path that is not found may be right, relative to another folder."""
    return "" if Path(path).is_absolute() else f" (resolved against the current directory {Path.cwd()})"


def check_file(path: Path, what: str = "file") -> Path:
    """`path` as a readable file, or a SelfSpecError that says what is wrong with it (`what` names the setting)."""
    path = Path(path)
    if path.is_dir():
        raise SelfSpecError(f"{what}: {path} is a directory, expected a file")
    if not path.exists():
        raise SelfSpecError(f"{what}: file not found: {path}{resolved_note(path)}")
    if not path.is_file():
        raise SelfSpecError(f"{what}: {path} is not a regular file")
    return path


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, a leading byte-order mark (Notepad, Excel) dropped. A missing,
    unreadable or non-UTF-8 file raises SelfSpecError naming the line and column."""
    lineno = 0
    try:
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    column = len(raw[: exc.start].decode("utf-8-sig" if lineno == 1 else "utf-8", "replace")) + 1
                    raise SelfSpecError(
                        f"{path}:{lineno}:{column}: not UTF-8 text ({exc.reason}, byte "
                        f"{raw[exc.start]:#04x}); save the file as UTF-8"
                    ) from None
    except FileNotFoundError:
        raise SelfSpecError(f"file not found: {path}{resolved_note(path)}") from None
    except IsADirectoryError:
        raise SelfSpecError(f"{path} is a directory, expected a file") from None
    except OSError as exc:
        raise SelfSpecError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_text(path: Path) -> str:
    """A whole UTF-8 text file (see text_lines)."""
    return "".join(line for _, line in text_lines(path))


def _json_line(path: Path, lineno: int, line: str) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        hint = (
            "; is this CSV? a .jsonl file holds one JSON object per line"
            if exc.pos == 0 and "," in line and not line.lstrip().startswith(("{", "[", '"'))
            else ""
        )
        raise SelfSpecError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}){hint}") from None
    except RecursionError:
        raise SelfSpecError(f"{path}:{lineno}: JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise SelfSpecError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
    return obj


def jsonl_objects(path: Path, problems: list[str] | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a jsonl file; any problem names file:line. With `problems`,
    a bad line is recorded there and skipped (every bad line of the file reported at once), else it raises."""
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        try:
            yield lineno, _json_line(path, lineno, line)
        except SelfSpecError as exc:
            if problems is None:
                raise
            problems.append(str(exc))


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8-sig"))


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
