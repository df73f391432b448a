import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """A small synthetic twin, generated once per test session."""
    from mmunlearn.data.synthetic import SyntheticSpec, generate

    root = tmp_path_factory.mktemp("data") / "twin"
    generate(root, SyntheticSpec(num_fictitious=20, num_celebrities=6, forget_ratios=(5, 10, 15), seed=3))
    return root
