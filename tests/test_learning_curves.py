"""benchmarks/learning_curves.py: the summary arithmetic on hand-made curves, and one tiny real unit."""

import json
import math
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
lc = pytest.importorskip("learning_curves")


def _run(dataset, strategy, seed, errors, key="rmse", n0=20, step=10):
    curve = []
    for i, e in enumerate(errors):
        rec = {"n_labels": n0 + step * i, "fit_s": 1.0, "acq_s": 0.5}
        if key == "accuracy":
            rec.update(accuracy=1 - e, nll=0.1)
        else:
            rec.update(rmse=e, nlpd=0.2)
        curve.append(rec)
    return {"dataset": dataset, "strategy": strategy, "seed": seed, "curve": curve}


def test_summary_ratios_and_area_on_hand_made_curves():
    results = [
        _run("toy", "random", 0, [1.0, 1.0, 1.0]), _run("toy", "random", 1, [2.0, 2.0, 2.0]),
        # seed 0: half of Random at both later steps; seed 1: equal, then a quarter
        _run("toy", "ivr", 0, [1.0, 0.5, 0.5]), _run("toy", "ivr", 1, [2.0, 2.0, 0.5]),
    ]
    rows = {r["strategy"]: r for r in lc.summarise(results, budgets=[30, 40])}
    assert rows["random"]["ratio_to_random"] == pytest.approx(1.0)
    # geometric mean of (0.5, 0.5, 1, 0.25), the initial design excluded
    assert rows["ivr"]["ratio_to_random"] == pytest.approx((0.5 * 0.5 * 1 * 0.25) ** 0.25)
    # the bootstrap interval over the two seeds: their per-seed ratios 0.5 and 0.5 (= √(1 · 0.25))
    # are equal, so every resample gives the same ratio
    assert rows["ivr"]["ratio_low"] == pytest.approx(0.5) and rows["ivr"]["ratio_high"] == pytest.approx(0.5)
    assert rows["random"]["ratio_low"] is None
    assert rows["ivr"]["rmse@40"] == pytest.approx(0.5)
    assert rows["ivr"]["nlpd@30"] == pytest.approx(0.2)
    # mean log error over the label range by the trapezoid rule, averaged over seeds
    a0 = (0.5 * (0 + math.log(0.5)) + 0.5 * (2 * math.log(0.5))) / 2
    a1 = (0.5 * (2 * math.log(2.0)) + 0.5 * (math.log(2.0) + math.log(0.5))) / 2
    assert rows["ivr"]["auc_log_error"] == pytest.approx((a0 + a1) / 2)
    assert rows["ivr"]["fit_s"] == pytest.approx(3.0) and rows["ivr"]["acq_s"] == pytest.approx(1.5)
    head = lc.headline(list(rows.values()))
    assert head[0]["best"] == "ivr" and head[0]["lcmd_ll"] is None
    table = lc.markdown(list(rows.values()), [30, 40])
    assert "| toy | ivr | 2 |" in table and "below Random on 1 of 1 regression sets (1 of 1 UCI sets)" in table


def test_classification_error_is_one_minus_accuracy():
    results = [_run("digits", "random", 0, [0.5, 0.4], key="accuracy"),
               _run("digits", "bald", 0, [0.5, 0.2], key="accuracy")]
    rows = {r["strategy"]: r for r in lc.summarise(results, budgets=[30])}
    assert rows["bald"]["ratio_to_random"] == pytest.approx(0.5)
    assert rows["bald"]["accuracy@30"] == pytest.approx(0.8)


def test_units_are_independent_json_records():
    settings = dict(lc.SUITES["quick"])
    plan = lc.units(["diabetes", "digits"], ["random", "integrated-variance", "bald", "lcmd-ll"], 2, settings, None)
    assert json.loads(json.dumps(plan)) == plan
    assert {(u["dataset"], u["strategy"]) for u in plan} == {
        ("diabetes", "random"), ("diabetes", "integrated-variance"), ("diabetes", "lcmd-ll"),
        ("digits", "random"), ("digits", "bald")}
    assert len(plan) == 10


def test_a_tiny_unit_runs_and_shares_the_initial_design():
    pytest.importorskip("sklearn")
    base = dict(dataset="diabetes", seed=0, budget=30, q=5, initial=10, max_pool=2000, botorch_max_pool=0, data_dir=None)
    rnd = lc.run_unit({**base, "strategy": "random"})
    ivr = lc.run_unit({**base, "strategy": "integrated-variance"})
    assert [s["n_labels"] for s in ivr["curve"]] == [10, 15, 20, 25, 30]
    assert rnd["curve"][0]["rmse"] == pytest.approx(ivr["curve"][0]["rmse"])  # same initial labels
    assert all(math.isfinite(s["rmse"]) and math.isfinite(s["nlpd"]) for s in ivr["curve"])
    assert "net_rmse" in rnd["curve"][-1]
    skipped = lc.run_unit({**base, "strategy": "botorch-nipv"})  # pool larger than botorch_max_pool = 0
    assert "curve" not in skipped and "--botorch-max-pool" in skipped["skipped"]


@pytest.mark.slow
def test_runs_spread_over_a_dask_cluster_give_the_same_curves():
    pytest.importorskip("sklearn")
    pytest.importorskip("dask.distributed")
    base = dict(dataset="diabetes", seed=1, budget=20, q=5, initial=10, max_pool=500, botorch_max_pool=0, data_dir=None)
    plan = [{**base, "strategy": "random"}, {**base, "strategy": "integrated-variance"}]
    here = {u["strategy"]: r for u, r, _ in lc.execute(plan)}
    there = {u["strategy"]: r for u, r, _ in lc.execute(plan, "dask", workers=1)}
    assert set(there) == {"random", "integrated-variance"}
    for name, record in here.items():
        strip = lambda curve: [{k: v for k, v in s.items() if not k.endswith("_s")} for s in curve]  # noqa: E731
        assert strip(there[name]["curve"]) == strip(record["curve"])


def test_paired_interval_and_verdict():
    """The bootstrap interval of a paired ratio: all resamples of seeds whose log ratios are −1,
    −1, −1 give e⁻¹ (a win); seeds at −1 and +1 give an interval around 1 (a tie)."""
    from _harness import paired_ratio_interval, verdict

    r, lo, hi = paired_ratio_interval({0: [-1.0], 1: [-1.0, -1.0], 2: [-1.0]})
    assert r == pytest.approx(math.exp(-1)) and lo == pytest.approx(math.exp(-1)) and hi == pytest.approx(math.exp(-1))
    assert verdict(lo, hi) == "win"
    r, lo, hi = paired_ratio_interval({0: [-1.0], 1: [1.0]})
    assert r == pytest.approx(1.0) and lo < 1 < hi and verdict(lo, hi) == "tie"
    assert verdict(1.1, 1.3) == "loss" and verdict(None, None) == "—"
    assert paired_ratio_interval({0: [0.5]})[1:] == (None, None)


def test_head_to_head_of_diversity_against_variance():
    results = [_run("toy", "integrated-variance", 0, [1.0, 1.0, 1.0]), _run("toy", "integrated-variance", 1, [1.0, 1.0, 1.0]),
               _run("toy", "lcmd", 0, [1.0, 2.0, 2.0]), _run("toy", "lcmd", 1, [1.0, 2.0, 2.0])]
    pairs = lc.versus(results)
    assert len(pairs) == 1 and pairs[0]["ratio"] == pytest.approx(2.0) and pairs[0]["verdict"] == "loss"
    assert "0 wins, 0 ties, 1 losses" in lc.versus_markdown(pairs)


def test_pairs_scored_by_a_variants_own_gp():
    """MODEL_VERSUS pairs read each side's named metric: the warped GP's own error (``model_rmse``)
    against the reference's shared-GP ``rmse``; the shared-GP pair of the same runs reads ``rmse``
    on both sides. Own errors of half the reference's give 1/2; the shared ones equal give 1."""
    def warped(seed):
        run = _run("airfoil", "integrated-variance-warp", seed, [1.0, 1.0, 1.0])
        for s in run["curve"]:
            s["model_rmse"] = 0.5
        return run

    results = [warped(0), warped(1), *(_run("airfoil", "integrated-variance", s, [1.0, 1.0, 1.0]) for s in (0, 1))]
    pairs = {(p["strategy"], p["reference"]): p for p in lc.versus(results)}
    own = pairs[("integrated-variance-warp (own GP)", "integrated-variance")]
    assert own["ratio"] == pytest.approx(0.5) and own["verdict"] == "win"
    assert pairs[("integrated-variance-warp", "integrated-variance")]["ratio"] == pytest.approx(1.0)


def test_overview_weights_every_set_equally_and_names_the_losses():
    """Two UCI-named sets with 2 seeds each: a win at ratio 1/2 on every step of "airfoil", a loss
    at 2 on "bike" with 3 steps a seed against 1 on airfoil (so pooling steps would weigh bike
    more); the overview's ratio over the sets is exp((log ½ + log 2) / 2) = 1, a tie, and bike is
    named as the set whose interval lies above 1. "heat" (a simulator) counts only in "all"."""
    from _harness import across_sets_interval

    results = []
    for seed in (0, 1):
        results += [_run("airfoil", "random", seed, [1.0, 1.0]), _run("airfoil", "ivr", seed, [1.0, 0.5]),
                    _run("bike", "random", seed, [1.0] * 4), _run("bike", "ivr", seed, [1.0, 2.0, 2.0, 2.0]),
                    _run("heat", "random", seed, [1.0, 1.0]), _run("heat", "ivr", seed, [1.0, 0.25])]
    (row,) = lc.overview(results)
    assert row["uci_sets"] == 2 and row["all_sets"] == 3
    assert row["uci"][0] == pytest.approx(1.0) and row["uci"][1] == pytest.approx(1.0)  # every resample the same
    assert row["all"][0] == pytest.approx((0.5 * 2 * 0.25) ** (1 / 3))
    assert (row["wins"], row["ties"], row["losses"], row["above_1"]) == (1, 0, 1, ["bike"])
    assert "| ivr | 2 | 1.000 [1.000, 1.000] | 1 / 0 / 1 | bike | 3 |" in lc.overview_markdown([row])
    # the stratified bootstrap resamples seeds within each set; one seed in a set: no interval
    assert across_sets_interval({"a": {0: [0.1]}, "b": {0: [0.2], 1: [0.3]}})[1:] == (None, None)
    r, lo, hi = across_sets_interval({"a": {0: [-1.0], 1: [1.0]}, "b": {0: [0.0], 1: [0.0]}})
    assert r == pytest.approx(1.0) and lo < 1 < hi


def test_any_folder_laid_out_like_the_uci_sets_is_a_data_set(tmp_path):
    """A user's own data folder (not one of the 13 names) runs through the harness and the CLI's
    problem registry; a name that is a path, or a folder without the two files, is refused."""
    import gzip

    import numpy as np

    from bayesal.problems import make_problem, problem_names

    rng = np.random.default_rng(0)
    X = rng.uniform(size=(120, 3))
    y = np.sin(3 * X[:, 0]) + X[:, 1]
    masks = np.zeros((120, 10), dtype=int)
    for j in range(10):
        masks[rng.choice(120, 20, replace=False), j] = 1
    folder = tmp_path / "my-lab"
    folder.mkdir()
    with gzip.open(folder / "data.csv.gz", "wt") as fh:
        np.savetxt(fh, np.column_stack([X, y]), delimiter=",")
    with gzip.open(folder / "test_mask.csv.gz", "wt") as fh:
        np.savetxt(fh, masks, delimiter=",", fmt="%d")
    (tmp_path / "empty").mkdir()
    assert "uci-my-lab" in problem_names(tmp_path) and "uci-empty" not in problem_names(tmp_path)
    problem = make_problem("uci-my-lab", data_dir=tmp_path, split=2)
    assert len(problem.space) == 100 and problem.test_set()[0].shape == (20, 3)
    assert lc.resolve_datasets("my-lab", str(tmp_path)) == ["my-lab"]
    with pytest.raises(SystemExit, match="no data set 'empty'"):
        lc.resolve_datasets("empty", str(tmp_path))
    with pytest.raises(SystemExit, match="no data set"):
        lc.resolve_datasets("../my-lab", str(tmp_path / "empty"))
    record = lc.run_unit(dict(dataset="my-lab", strategy="integrated-variance", seed=1, budget=16, q=3, initial=10,
                              max_pool=2000, botorch_max_pool=0, data_dir=str(tmp_path)))
    assert [s["n_labels"] for s in record["curve"]] == [10, 13, 16]
