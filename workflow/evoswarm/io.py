"""File I/O at the edges: atomic writes, JSONL with file:line errors, adapter-folder publishing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


class InputError(ValueError):
    """Bad input: the message names the file, line or config key."""


def read_jsonl(
    path: str | Path,
    required: Iterable[str] = (),
    check: Callable[[dict], str | None] | None = None,
    unique: str | None = None,
) -> list[dict]:
    """Read a JSONL file of objects. A line that is not UTF-8, not a JSON object, lacks a `required`
    field, or for which `check(row)` returns a problem, raises InputError naming file:line; so does a
    row whose `unique` field repeats an earlier row's (naming both lines)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    rows = []
    seen: dict = {}
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = _decode(raw, path, lineno)
            if not line.strip():
                continue
            row = _parse(line, path, lineno)
            missing = [k for k in required if k not in row]
            if missing:
                raise InputError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
            problem = check(row) if check else None
            if problem:
                raise InputError(f"{path}:{lineno}: {problem}")
            if unique is not None:
                key = row.get(unique)
                if key in seen:
                    raise InputError(f"{path}:{lineno}: duplicate {unique} {key!r} (first on line {seen[key]})")
                seen[key] = lineno
            rows.append(row)
    if not rows:
        raise InputError(f"{path}: empty file")
    return rows


def read_json(path: str | Path) -> dict:
    """Read a JSON object from `path`; a missing file, non-UTF-8 bytes or invalid JSON raise InputError
    naming the file (and line)."""
    return _parse(read_text(path), Path(path))


def read_text(path: str | Path) -> str:
    """A UTF-8 text file; a missing file or bytes that are not UTF-8 raise InputError naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    return _decode(path.read_bytes(), path)


def _decode(raw: bytes, path: Path, lineno: int | None = None) -> str:
    """`raw` (line `lineno` of `path`, or the whole file) as text; bytes that are not UTF-8 name file:line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = lineno or raw.count(b"\n", 0, e.start) + 1
        raise InputError(f"{path}:{line}: not UTF-8 (byte 0x{raw[e.start]:02x})") from None


def _parse(text: str, path: Path, lineno: int | None = None) -> dict:
    """A JSON object from `text` (line `lineno` of `path`, or the whole file), else InputError naming file:line."""
    where = f"{path}:{lineno}" if lineno else str(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{lineno or e.lineno}: invalid JSON ({e.msg})") from None
    except (ValueError, RecursionError) as e:  # a number of 5000 digits, nesting deeper than the stack
        raise InputError(f"{where}: invalid JSON ({type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object")
    return obj


_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"  # tempfile.mkdtemp's


def _make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new folder `<prefix><8 random characters>` in `parent`, as tempfile.mkdtemp makes one but with the
    process's umask (mkdtemp's is always 0700, and a folder output renamed from it would keep it: a results
    folder shared with a group would be unreadable to it)."""
    rng = random.SystemRandom()
    for _ in range(tempfile.TMP_MAX):
        tmp = parent / (prefix + "".join(rng.choice(_TEMP_CHARS) for _ in range(8)))
        try:
            tmp.mkdir(mode=0o777)  # less the umask
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent}: no free name for a temporary {prefix}* folder")


@contextlib.contextmanager
def atomic_path(path: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block completes.

    An interrupted stage leaves a `.tmp-<name>-<8 random characters>` sibling and never a half-written
    result; the next write of the same output that completes removes those siblings.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _make_temp_dir(path.parent, f".tmp-{path.name}-")
    target = tmp if is_dir else tmp / path.name
    try:
        yield target
        if path.is_dir() and is_dir:
            shutil.rmtree(path)
        os.replace(target, path)
        # Exactly 8 of mkdtemp's characters after the name: another output's leftovers never match.
        own = re.compile(rf"\.tmp-{re.escape(path.name)}-[a-z0-9_]{{8}}")
        for stale in path.parent.iterdir():
            if stale != tmp and own.fullmatch(stale.name):
                shutil.rmtree(stale, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
