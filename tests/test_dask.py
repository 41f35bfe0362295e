"""Dask execution on a real LocalCluster of worker processes: campaigns, a dying worker, the CLI,
and sharded pool scoring that equals the single-process selection."""

import json
import os

import pytest
import torch

distributed = pytest.importorskip("distributed")

from bayesal import Campaign, ExactGP, InvalidInput, Pool, select  # noqa: E402
from bayesal.acquisition import make_acquisition  # noqa: E402
from bayesal.loop import DaskExecutor, distributed_select  # noqa: E402

import campaign_oracles  # noqa: E402
from test_cli_campaign import cli  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]
SETTINGS = dict(problem="forrester", model="exact-gp", strategy="max-variance", budget=10, q=2, initial=3, seed=4)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One cluster for the module: two single-threaded worker processes."""
    marker = tmp_path_factory.mktemp("dask") / "died"
    previous = os.environ.get("BAYESAL_TEST_MARKER")
    os.environ["BAYESAL_TEST_MARKER"] = str(marker)  # the workers inherit it
    cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0")
    client = distributed.Client(cluster)
    client.marker = marker
    yield client
    client.close()
    cluster.close()
    if previous is None:
        os.environ.pop("BAYESAL_TEST_MARKER", None)
    else:
        os.environ["BAYESAL_TEST_MARKER"] = previous


@pytest.fixture(scope="module")
def fitted():
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(4000, 2, generator=gen, dtype=torch.float64)
    Xt = torch.rand(25, 2, generator=gen, dtype=torch.float64)
    gp = ExactGP().fit(Xt, torch.sin(5 * Xt[:, 0]) * torch.cos(3 * Xt[:, 1]), bounds=[[0.0, 0.0], [1.0, 1.0]])
    return gp, X


@pytest.mark.parametrize("strategy", ["max-variance", "bald", "joint-information"])
@pytest.mark.parametrize("selector", ["topk", "greedy"])
def test_sharded_pool_scoring_equals_one_process(client, fitted, strategy, selector):
    gp, X = fitted
    pool = Pool(X)
    pool.mark_labelled(torch.arange(0, 4000, 7))  # shards must skip labelled rows too
    acq = make_acquisition(strategy)
    want = select(gp, acq, pool, 12, selector=selector)
    got = distributed_select(client, gp, acq, pool, 12, selector=selector, n_shards=5)
    assert got.indices.tolist() == want.indices.tolist()
    assert torch.allclose(got.scores, want.scores, rtol=1e-9, atol=1e-12)
    assert torch.equal(got.X, X[got.indices])
    assert not pool.labelled[got.indices].any()


def test_sharded_scoring_refuses_criteria_that_need_more_than_marginals(client, fitted):
    gp, X = fitted
    with pytest.raises(InvalidInput, match="marginals"):
        distributed_select(client, gp, make_acquisition("integrated-variance"), Pool(X), 4)


def test_campaign_on_dask_completes_with_a_failing_oracle(client, tmp_path):
    executor = DaskExecutor(client=client)
    assert executor.max_workers == 2
    with Campaign.create(tmp_path / "s.db", oracle=campaign_oracles.every_fifth_call_fails, executor=executor,
                         **SETTINGS) as c:
        c.run()
        exps = c.store.experiments()
    assert sum(e.state == "done" for e in exps) == 10
    failed = [e for e in exps if e.state == "failed"]
    # each of the 2 worker processes fails every fifth call it makes (whatever it ran before), so
    # without a failure they could make at most 4 calls each: 10 successes need at least one
    assert len(failed) >= 1 and all("simulated failure" in e.error for e in failed)
    assert len({e.worker for e in exps}) == 1  # claimed by the campaign process, run on the cluster


def test_campaign_scoring_its_pool_on_the_cluster_equals_the_in_process_campaign(client, tmp_path):
    settings = {**SETTINGS, "problem": "branin", "pool_size": 600, "q": 3, "budget": 12}
    with Campaign.create(tmp_path / "local.db", **settings) as c:
        c.run()
        want = [(e.step, e.slot, e.pool_index, e.y) for e in c.store.experiments()]
    with Campaign.create(tmp_path / "dask.db", executor=DaskExecutor(client=client), shard_pools_from=100,
                         verbose=True, **settings) as c:
        c.run()
        got = [(e.step, e.slot, e.pool_index, e.y) for e in c.store.experiments()]
    assert got == want


def test_cli_connects_to_a_running_scheduler(client, tmp_path):
    path = tmp_path / "s.db"
    code, out, err = cli("run", "--store", path, "--problem", "forrester", "--strategy", "max-variance", "--budget", "6",
                         "-q", "2", "--executor", "dask", "--cluster", client.scheduler.address, "--async", "--verbose")
    assert code == 0, err
    assert "executor dask (2 worker(s))" in err
    hosts = {line.rsplit(" on ", 1)[1].rstrip(")") for line in err.splitlines() if " done: y = " in line}
    assert len(hosts) >= 1 and all(str(os.getpid()) not in h for h in hosts)  # evaluated in the workers
    status = json.loads(cli("status", "--store", path, "--json")[1])
    assert status["done"] == 6 and status["campaign"]["asynchronous"]


def test_a_worker_that_dies_has_its_experiment_retried(client, tmp_path):
    executor = DaskExecutor(client=client)
    with Campaign.create(tmp_path / "s.db", oracle=campaign_oracles.dies_once, executor=executor,
                         **{**SETTINGS, "budget": 6}) as c:
        c.run()
        assert c.store.counts()["done"] == 6
    assert client.marker.exists()  # a worker process did die, and its task ran again elsewhere
    client.wait_for_workers(2, timeout=60)


def test_cli_starts_its_own_local_cluster(tmp_path):
    code, _, err = cli("run", "--store", tmp_path / "s.db", "--problem", "forrester", "--budget", "4",
                       "--executor", "dask", "--workers", "1", "--quiet")
    assert code == 0, err
    assert json.loads(cli("status", "--store", tmp_path / "s.db", "--json")[1])["done"] == 4


@pytest.mark.parametrize("model", ["exact-gp", "mc-dropout-regression"])
def test_epig_campaign_on_the_cluster_equals_the_in_process_campaign(client, tmp_path, model):
    """Regression: EPIG was checked for sharding before it was bound to the surrogate, passed as
    scored-from-marginals, and crashed on the workers. Bound first, a Gaussian EPIG (which needs
    cross-covariances) stays in process and a sample-posterior EPIG is sharded; both give the
    in-process campaign's experiments."""
    settings = {**SETTINGS, "problem": "branin", "pool_size": 300, "q": 3, "budget": 9, "strategy": "epig",
                "model": model}
    with Campaign.create(tmp_path / "local.db", **settings) as c:
        c.run()
        want = [(e.step, e.slot, e.pool_index) for e in c.store.experiments()]
    with Campaign.create(tmp_path / "dask.db", executor=DaskExecutor(client=client), shard_pools_from=100,
                         **settings) as c:
        c.run()
        got = [(e.step, e.slot, e.pool_index) for e in c.store.experiments()]
    assert got == want


def test_sharded_epig_of_a_sample_posterior_equals_one_process(client):
    from bayesal import EPIG, MCDropoutNet

    gen = torch.Generator().manual_seed(1)
    X = torch.rand(600, 2, generator=gen, dtype=torch.float64)
    net = MCDropoutNet(task="regression", hidden=(16, 16), max_epochs=20, seed=0).fit(X[:30], X[:30].sum(-1))
    pool = Pool(X)
    pool.mark_labelled(torch.arange(30))
    want = select(net, EPIG(n_reference=32), pool, 5)
    got = distributed_select(client, net, EPIG(n_reference=32), pool, 5, n_shards=3)
    assert got.indices.tolist() == want.indices.tolist()
    assert torch.allclose(got.scores, want.scores, rtol=1e-6)
