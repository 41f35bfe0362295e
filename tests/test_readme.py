"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code.replace("budget=30, q=5)", "budget=30, q=5, progress=False)"), str(README), "exec"), namespace)
    if "post" in namespace:
        assert namespace["post"].mean.shape == (5, 1)
    if "records" in namespace:
        assert namespace["records"][-1]["n_labels"] == 30
