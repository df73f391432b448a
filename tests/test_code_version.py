"""The rules' code hash (mmunlearn.code_version): what a job executes counts, its comments, docstrings and layout do
not; files that are not parseable Python count by their bytes; a path that does not exist is an error."""
import os

import pytest

from conftest import REPO
from mmunlearn.code_version import code_version, normalised_source

MODULE = '''"""A module."""
import math


class Scaler:
    """Scales."""

    def __init__(self, factor):
        """Keeps the factor."""
        self.factor = factor  # per unit

    def __call__(self, x):
        return self.factor * math.sqrt(x)


async def fetch(url):
    """Only a docstring."""


def loss(logits, labels):
    # the mean, not the sum
    return ((logits - labels) ** 2).mean()
'''

# the same code: other comments, docstrings, blank lines, quotes, spacing and line breaks
SAME = """'''Another module docstring, longer,
over two lines.'''
import math
class Scaler:
    '''Multiplies.'''
    def __init__(self,factor):
        self.factor = factor
    def __call__(self, x):   # called per item
        return (self.factor *
                math.sqrt(x))
async def fetch(url):
    pass
def loss(logits, labels):
    '''The squared error.'''
    return ((logits - labels)**2).mean()
"""

# each a change in what runs
DIFFERENT = [
    MODULE.replace("math.sqrt(x)", "math.sqrt(abs(x))"),
    MODULE.replace(".mean()", ".sum()"),
    MODULE.replace("self.factor = factor  # per unit", "self.factor = float(factor)"),
    MODULE.replace('    """Only a docstring."""', '    return url'),
    MODULE + "\nEPSILON = 1e-8\n",
    MODULE.replace('"""Scales."""', '"""Scales."""\n    unit = "m"'),
    MODULE.replace("# the mean, not the sum\n    return", 'print("the mean, not the sum")\n    return'),
]


def _hash(tmp_path, files: dict) -> str:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return code_version(tmp_path, *sorted({name.split("/")[0] for name in files}))


def test_comments_docstrings_and_layout_do_not_count(tmp_path):
    assert normalised_source(MODULE) == normalised_source(SAME)
    assert _hash(tmp_path / "a", {"pkg/m.py": MODULE}) == _hash(tmp_path / "b", {"pkg/m.py": SAME})


@pytest.mark.parametrize("k", range(len(DIFFERENT)))
def test_a_change_in_what_runs_counts(tmp_path, k):
    assert normalised_source(DIFFERENT[k]) != normalised_source(MODULE)
    assert _hash(tmp_path / "a", {"pkg/m.py": MODULE}) != _hash(tmp_path / "b", {"pkg/m.py": DIFFERENT[k]})


def test_moving_code_between_modules_counts(tmp_path):
    one, two = "def f():\n    return 1\n", "def g():\n    return 2\n"
    assert _hash(tmp_path / "a", {"pkg/x.py": one, "pkg/y.py": two}) != \
        _hash(tmp_path / "b", {"pkg/x.py": one + two, "pkg/y.py": ""})


def test_files_that_do_not_parse_and_other_files_count_by_their_bytes(tmp_path):
    broken = "def f(:\n    return 1\n"
    assert _hash(tmp_path / "a", {"pkg/m.py": broken}) != _hash(tmp_path / "b", {"pkg/m.py": broken + "# edit\n"})
    assert _hash(tmp_path / "c", {"s.yaml": "a: 1\n"}) != _hash(tmp_path / "d", {"s.yaml": "a: 1  # edit\n"})


def test_an_edit_during_the_process_is_seen(tmp_path):
    """The per-file cache is keyed by the file's version: the same path edited gives the new hash."""
    path = tmp_path / "pkg" / "m.py"
    before = _hash(tmp_path, {"pkg/m.py": MODULE})
    path.write_text(DIFFERENT[0])
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert code_version(tmp_path, "pkg") != before
    path.write_text(MODULE)
    assert code_version(tmp_path, "pkg") == before


def test_a_missing_path_is_an_error_naming_it(tmp_path):
    (tmp_path / "pkg").mkdir()
    with pytest.raises(FileNotFoundError, match="pkg/gone.py"):
        code_version(tmp_path, "pkg", "pkg/gone.py")


def test_the_shipped_rules_code_is_hashed_without_its_comments():
    """The package itself: every module parses (nothing falls back to bytes, where a comment would rerun jobs)."""
    for path in sorted((REPO / "src/mmunlearn").rglob("*.py")) + sorted((REPO / "workflow_scripts").glob("*.py")):
        normalised_source(path.read_text())  # raises SyntaxError naming the line of one that does not parse
