"""The code a rule runs, as a content hash that is one of the rule's params: editing what a job executes reruns
it, while a new git commit alone, or an edit to a comment, a docstring or the layout, does not (retraining a 7B
model for a fixed typo costs GPU hours and changes no number).

A Python file is hashed as its syntax tree without docstrings, written back as source (``ast.unparse``), so two
files that differ only in comments, docstrings, blank lines, line breaks inside brackets, quotes or spacing hash
the same. Any other file, and a Python file that does not parse (its job will fail on the error, which this
should not hide), is hashed as its bytes. Two limits, on purpose: code that reads its own docstring (``__doc__``)
does not rerun when the docstring changes, and a Python upgrade that writes the same tree differently reruns
everything once. A workflow script is hashed the same way, but Snakemake reruns a script rule whenever its script
is newer than its outputs, so there any edit counts. Importing this module loads nothing heavy."""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def normalised_source(text: str) -> str:
    """``text`` as Python without comments, docstrings or its own layout; raises SyntaxError if it does not parse."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, _DOCUMENTED) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            # a body cannot be empty: a function that is only a docstring keeps a `pass`
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def file_fingerprint(path: Path) -> bytes:
    """What the hash reads of one file: the normalised source of a Python file that parses, else its bytes.
    Remembered per file version for the life of the process: the rules share most of their modules."""
    stat = path.stat()
    return _fingerprint(path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=None)
def _fingerprint(path: Path, mtime_ns: int, size: int) -> bytes:  # the file's version is part of the key
    data = path.read_bytes()
    if path.suffix == ".py":
        try:
            return normalised_source(data.decode("utf-8")).encode()
        except (SyntaxError, UnicodeDecodeError, ValueError):
            pass
    return data


def code_version(root: str | Path, *paths: str) -> str:
    """Hash of the files ``paths`` (relative to ``root``; a folder stands for every ``*.py`` file under it), each
    with its path, so that moving code between modules also counts as a change. A missing path is an error
    naming it: a rule whose hash silently skipped a renamed module would never rerun for it."""
    root = Path(root)
    digest = hashlib.sha256()
    for rel in paths:
        path = root / rel
        if not path.exists():
            raise FileNotFoundError(f"code_version: {rel} (under {root}) does not exist")
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(root)).encode() + b"\0")
            digest.update(file_fingerprint(file) + b"\0")
    return digest.hexdigest()[:16]
