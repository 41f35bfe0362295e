"""The ``bayesal`` command, run as a real subprocess."""

import json
import subprocess
import sys

import pytest

FIELDS = {"n_labels", "rmse", "nlpd", "fit_s", "acq_s"}


def bayesal(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bayesal", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_run_writes_results_and_learning_curve(tmp_path):
    out = tmp_path / "run"
    proc = bayesal("run", "--problem", "forrester", "--strategy", "bald", "--budget", "8", "--batch-size", "2",
                   "--initial", "3", "--seed", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    records = json.loads((out / "results.json").read_text())
    assert isinstance(records, list) and [r["n_labels"] for r in records] == [3, 5, 7, 8]
    assert all(FIELDS <= set(r) for r in records)
    png = (out / "learning_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert json.loads((out / "config.json").read_text())["strategy"] == "bald"
    assert "rmse" in proc.stdout  # the summary table


def test_default_campaign_runs_with_no_options(tmp_path):
    proc = bayesal("run", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = json.loads((tmp_path / "runs" / "latest" / "results.json").read_text())
    assert records[-1]["n_labels"] == 40
    assert records[-1]["rmse"] < records[0]["rmse"] / 5  # the default learns Branin well


def test_baseline_is_run_on_the_same_budget_and_plotted(tmp_path):
    proc = bayesal("run", "--problem", "forrester", "--budget", "6", "-q", "3", "--baseline", "random",
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    ours = json.loads((tmp_path / "results.json").read_text())
    base = json.loads((tmp_path / "baseline_results.json").read_text())
    assert [r["n_labels"] for r in ours] == [r["n_labels"] for r in base]
    assert "ratio" in proc.stdout


def test_list_names_problems_models_and_strategies():
    proc = bayesal("list")
    assert proc.returncode == 0
    for word in ("branin", "hartmann6", "heat", "forrester", "exact-gp", "joint-information", "random"):
        assert word in proc.stdout


@pytest.mark.parametrize("args, needle", [
    (["run", "--problem", "nope"], "invalid problem"),
    (["run", "--model", "svm"], "invalid model"),
    (["run", "--strategy", "ucb"], "invalid strategy"),
    (["run", "--budget", "0"], "--budget"),
    (["run", "--budget", "ten"], "invalid int value"),
    (["run", "--batch-size", "-1"], "--batch-size"),
    (["run", "--selector", "best"], "--selector"),
    (["run", "--baseline", "coin"], "invalid strategy"),
    (["run", "--noise-std", "-1"], "--noise-std"),
    (["run", "--problem", "forrester", "--budget", "2", "--initial", "5"], "invalid --initial"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, args, needle):
    proc = bayesal(*args, "--out", str(tmp_path)) if args[0] == "run" else bayesal(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bayesal: error:") and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
