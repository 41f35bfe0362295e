"""A table of hostile command lines (issue 17): every case exits 0 or 2 (1 only for a campaign
stopped by too many failed experiments), prints no traceback, and leaves every label an oracle
returned (and every result a store held) in the store.

The cases run through ``bayesal.cli.main`` in this process (the same code as the command); a few
run as real subprocesses (marked slow)."""

import json
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cli_campaign import bayesal, cli  # noqa: E402  (the same helpers)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ORACLES = textwrap.dedent("""
    import json
    import os
    import sys
    import time

    import torch
    from bayesal.problems.analytic import forrester

    _calls = {"n": 0}


    def _good(X):
        y = forrester(X)
        with open(os.environ["FUZZ_LABELS"], "a") as fh:  # every label handed back, to find in the store
            fh.write(json.dumps([X[0].tolist(), [float(v) for v in y.reshape(-1)]]) + "\\n")
        return y


    def _after(k, bad):
        def oracle(X):
            _calls["n"] += 1
            return bad(X) if _calls["n"] > k else _good(X)
        return oracle


    def _raise(X):
        raise RuntimeError("simulator crashed")


    def _exit(X):
        sys.exit(3)


    def _hang(X):
        time.sleep(3)
        return forrester(X)


    raises = _raise
    exits = _exit
    raises_later = _after(2, _raise)
    exits_later = _after(2, _exit)
    exits_none_later = _after(2, lambda X: sys.exit())
    nan_later = _after(2, lambda X: torch.tensor([float("nan")]))
    inf_later = _after(2, lambda X: torch.tensor([float("inf")]))
    huge_later = _after(2, lambda X: torch.tensor([1e200]))
    huger_later = _after(2, lambda X: torch.tensor([1e300]))
    shape_later = _after(2, lambda X: torch.zeros(3, 2))
    string_later = _after(2, lambda X: "forty-two")
    dict_later = _after(2, lambda X: {"cost": 1.0})
    bad_cost_later = _after(2, lambda X: {"y": forrester(X), "cost": "cheap"})
    nan_cost_later = _after(2, lambda X: {"y": forrester(X), "cost": float("nan")})
    hangs_later = _after(2, _hang)
    keyerror_later = _after(2, lambda X: {}["missing"])
    good = _good
    not_callable = 42
""")

RUN = ["run", "--problem", "forrester", "--budget", "4", "-q", "2", "--initial", "2", "--quiet"]
BIG = str(10 ** 40)

# (id, command line, may exit 1): {tmp} is the test's folder, {store} a store path in it; a case
# that may not exit 1 is a refusal and must exit 2
FLAG_CASES = [
    ("budget-nan", ["run", "--budget", "nan"], False),
    ("budget-negative", ["run", "--budget", "-3"], False),
    ("budget-huge-pool", ["run", "--problem", "forrester", "--pool-size", "5", "--budget", BIG], False),
    ("budget-huge-pool-store", ["run", "--problem", "forrester", "--pool-size", "5", "--budget", BIG,
                                "--store", "{store}"], False),
    ("budget-over-pool-store", ["run", "--problem", "forrester", "--pool-size", "5", "--budget", "8",
                                "--store", "{store}", "--quiet", "--out", "{tmp}/o"], False),
    ("batch-zero", ["run", "--batch-size", "0"], False),
    ("batch-string", ["run", "--batch-size", "two"], False),
    ("batch-huge", ["run", "--problem", "forrester", "--budget", "3", "--batch-size", BIG, "--quiet"], False),
    ("seed-nan", ["run", "--seed", "nan"], False),
    ("seed-huge", ["run", "--problem", "forrester", "--budget", "3", "--seed", BIG, "--quiet"], False),
    ("seed-negative", ["run", "--problem", "forrester", "--budget", "3", "--seed", "-5", "--quiet"], False),
    ("noise-negative", ["run", "--noise-std", "-1"], False),
    ("noise-nan", ["run", "--noise-std", "nan"], False),
    ("noise-inf", ["run", "--noise-std", "inf"], False),
    ("noise-huge", ["run", "--problem", "forrester", "--budget", "3", "--noise-std", "1e308", "--quiet"], True),
    ("noise-huge-store", ["run", "--problem", "forrester", "--budget", "3", "--noise-std", "1e308", "--quiet",
                          "--store", "{store}", "--max-failures", "2"], True),
    ("initial-zero", ["run", "--initial", "0"], False),
    ("initial-over-budget", ["run", "--budget", "3", "--initial", "9"], False),
    ("timeout-negative", ["run", "--store", "{store}", "--timeout", "-1"], False),
    ("timeout-inf", ["run", "--store", "{store}", "--timeout", "inf"], False),
    ("retries-negative", ["run", "--store", "{store}", "--retries", "-1"], False),
    ("max-failures-zero", ["run", "--store", "{store}", "--max-failures", "0"], False),
    ("problem-empty", ["run", "--problem", ""], False),
    ("problem-unknown", ["run", "--problem", "nosuch"], False),
    ("model-spaces", ["run", "--model", "x y"], False),
    ("strategy-number", ["run", "--strategy", "123"], False),
    ("selector-bad", ["run", "--selector", "best"], False),
    ("executor-bad", ["run", "--executor", "cloud"], False),
    ("workers-negative", ["run", "--store", "{store}", "--workers", "-1"], False),
    ("pool-size-zero", ["run", "--pool-size", "0"], False),
    ("abbreviated-flag", ["run", "--pool", "5"], False),
    ("unknown-flag", ["run", "--colour", "red"], False),
    ("candidates-single-fidelity", ["run", "--n-candidates", "5"], False),
    ("cost-budget-nan", ["run", "--problem", "forrester-mf", "--cost-budget", "nan"], False),
    ("cost-budget-inf", ["run", "--problem", "forrester-mf", "--cost-budget", "inf"], False),
    ("cost-budget-tiny", ["run", "--problem", "forrester-mf", "--cost-budget", "1e-300"], False),
    ("lease-nan", ["run", "--store", "{store}", "--lease", "nan"], False),
    ("lease-negative", ["resume", "--store", "{store}", "--lease", "-1"], False),
    ("idle-timeout-nan", ["work", "--store", "{store}", "--idle-timeout", "nan"], False),
    ("oracle-empty", ["run", "--store", "{store}", "--oracle", ""], False),
    ("oracle-colon-only", ["run", "--store", "{store}", "--oracle", ":"], False),
    ("oracle-no-module", ["run", "--store", "{store}", "--oracle", "no_such_module_fz:f"], False),
    ("oracle-not-callable", ["run", "--store", "{store}", "--oracle", "fz_fuzz_oracles:not_callable"], False),
    ("oracle-without-store", ["run", "--oracle", "fz_fuzz_oracles:good"], False),
    ("out-under-a-file", ["run", "--problem", "forrester", "--budget", "3", "--out", "{tmp}/file/sub"], False),
    ("store-under-a-file", ["run", "--store", "{tmp}/file/sub.db"], False),
    ("report-out-under-a-file", ["report", "--store", "{store}", "--out", "{tmp}/file/r"], False),
    ("no-command", [], False),
    ("unknown-command", ["fly"], False),
    ("status-no-store-flag", ["status"], False),
]

#: the error line of some refusals names what was refused (not a generic OSError or a later check)
NEEDLES = {
    "out-under-a-file": "argument --out: cannot write to",
    "report-out-under-a-file": "argument --out: cannot write to",
    "store-under-a-file": "cannot create a campaign store",
    "abbreviated-flag": "unrecognized arguments: --pool 5",
    "budget-over-pool-store": "invalid budget: expected at most 5",
    "lease-nan": "argument --lease",
    "lease-negative": "argument --lease",
    "noise-nan": "invalid --noise-std",
    "noise-inf": "invalid --noise-std",
}

TOML_CASES = [
    ("float-budget", "budget = 3.5\n"),
    ("bool-budget", "budget = true\n"),
    ("string-batch", 'batch-size = "2"\n'),
    ("unknown-key", 'colour = "red"\n'),
    ("invalid-toml", "budget = = 3\n"),
    ("array", "problem = ['forrester']\n"),
    ("table-wrong-type", "[run]\nseed = 'zero'\n"),
    ("inf-noise", "noise_std = inf\n"),
    ("nan-timeout", "timeout = nan\nstore = '{store}'\n"),
    ("negative-lease-key", "lease = -1\nstore = '{store}'\n"),
    ("huge-int", f"budget = {10 ** 30}\npool-size = 5\n"),
    ("binary", None),
]


def check(code, out, err, may_fail=False):
    assert "Traceback" not in err + out and "internal error" not in err, err
    assert code in ((0, 1, 2) if may_fail else (0, 2)), (code, err)
    if code == 2:  # one error line, last; before it at most the campaign's own "bayesal: ..." lines
        lines = err.strip().splitlines()
        assert [line.startswith("bayesal: error: ") for line in lines][-1:] == [True], err
        assert sum(line.startswith("bayesal: error: ") for line in lines) == 1, err
        assert all(line.startswith("bayesal: ") for line in lines), err


def done_rows(path):
    if not Path(path).is_file():
        return {}
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT id, x, y FROM experiments WHERE state = 'done'").fetchall()
    except sqlite3.DatabaseError:
        return {}
    finally:
        conn.close()
    out = {}
    for i, x, y in rows:
        try:
            out[i] = (json.loads(x), json.loads(y))
        except (TypeError, ValueError):  # a row a case edited into nonsense: not a result
            pass
    return out


@pytest.fixture
def fuzz(tmp_path, monkeypatch):
    (tmp_path / "fz_fuzz_oracles.py").write_text(ORACLES)
    (tmp_path / "file").write_text("a file, not a folder")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FUZZ_LABELS", str(tmp_path / "labels.jsonl"))
    monkeypatch.chdir(tmp_path)  # the default --out runs/latest lands here
    yield tmp_path
    sys.modules.pop("fz_fuzz_oracles", None)


def fill(args, tmp):
    return [a.replace("{tmp}", str(tmp)).replace("{store}", str(tmp / "s.db")) for a in args]


def _case(c):
    if not hasattr(c, "marks"):
        return pytest.param(*c[1:], NEEDLES.get(c[0]), id=c[0])
    return pytest.param(*c.values[1:], NEEDLES.get(c.values[0]), marks=c.marks, id=c.values[0])


@pytest.mark.parametrize("args, may_fail, needle", [_case(c) for c in FLAG_CASES])
def test_hostile_flags(fuzz, args, may_fail, needle):
    args = fill(args, fuzz)
    if args and args[0] in ("resume", "work", "report") and "{store}" not in " ".join(args):
        pass
    if args[:1] in (["resume"], ["work"], ["report"]):  # an existing, finished store
        code, _, err = cli(*RUN, "--store", fuzz / "s.db", "--out", fuzz / "o")
        assert code == 0, err
    before = done_rows(fuzz / "s.db")
    code, out, err = cli(*args)
    check(code, out, err, may_fail)
    if not may_fail:
        assert code == 2, (code, err)  # refused, not run anyway
        if args[:1] == ["run"]:
            assert not (fuzz / "s.db").exists(), "a refused run left a store behind"
    if needle is not None:
        assert needle in err.strip().splitlines()[-1], err
    after = done_rows(fuzz / "s.db")
    assert all(after.get(i) == row for i, row in before.items())


@pytest.mark.parametrize("toml", [c[1] for c in TOML_CASES], ids=[c[0] for c in TOML_CASES])
def test_hostile_config_files(fuzz, toml):
    path = fuzz / "c.toml"
    if toml is None:
        path.write_bytes(b"\xff\xfe\x00budget\x00=\x003")
    else:
        path.write_text(toml.replace("{store}", str(fuzz / "s.db")))
    code, out, err = cli("run", "--config", path, "--problem", "forrester", "--quiet", "--out", fuzz / "o")
    check(code, out, err)
    assert code == 2


def _store_finished(tmp):
    code, _, err = cli(*RUN, "--store", tmp / "s.db", "--out", tmp / "o")
    assert code == 0, err


def _truncate(tmp):
    _store_finished(tmp)
    data = (tmp / "s.db").read_bytes()
    (tmp / "s.db").write_bytes(data[: len(data) // 3])


def _edit(sql):
    def make(tmp):
        _store_finished(tmp)
        with sqlite3.connect(tmp / "s.db") as conn:
            conn.execute(sql)
        conn.close()
    return make


def _half_done(tmp):
    """A store with two done and two pending experiments (a run stopped after its initial design)."""
    _store_finished(tmp)
    with sqlite3.connect(tmp / "s.db") as conn:
        conn.execute("UPDATE experiments SET state = 'pending', y = NULL WHERE id > 2")
        conn.execute("DELETE FROM records WHERE n_labels > 2")
    conn.close()


STORE_CASES = [
    ("directory", lambda tmp: (tmp / "s.db").mkdir()),
    ("empty-file", lambda tmp: (tmp / "s.db").write_bytes(b"")),
    ("text-file", lambda tmp: (tmp / "s.db").write_text("hello\n")),
    ("sqlite-header-only", lambda tmp: (tmp / "s.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 84)),
    ("truncated", _truncate),
    ("foreign-sqlite", _edit("CREATE TABLE IF NOT EXISTS other (a)") if False else
     lambda tmp: sqlite3.connect(tmp / "s.db").execute("CREATE TABLE t (a)").connection.commit()),
    ("x-invalid-json", _edit("UPDATE experiments SET x = '[0.1,' WHERE id = 1")),
    ("y-string", _edit("UPDATE experiments SET y = '\"high\"' WHERE id = 2")),
    ("y-null-done", _edit("UPDATE experiments SET y = NULL WHERE id = 2")),
    ("y-overflow", _edit("UPDATE experiments SET y = '[1e999]' WHERE id = 2")),
    ("x-wrong-dimension", _edit("UPDATE experiments SET x = '[0.1, 0.2, 0.3]' WHERE id = 2")),
    ("config-not-object", _edit("UPDATE campaign SET config = '\"forrester\"'")),
    ("config-bad-budget", _edit("UPDATE campaign SET config = json_set(config, '$.budget', 'ten')")),
    ("config-unknown-key", _edit("UPDATE campaign SET config = json_set(config, '$.colour', 'red')")),
    ("config-bad-problem", _edit("UPDATE campaign SET config = json_set(config, '$.problem', 'nosuch')")),
    ("record-invalid", _edit("UPDATE records SET record = '{' WHERE n_labels = 2")),
    ("record-not-object", _edit("UPDATE records SET record = '[]' WHERE n_labels = 2")),
    ("state-renamed-table", _edit("ALTER TABLE steps RENAME TO steps_old")),
    ("schema-from-the-future", _edit("UPDATE bayesal_meta SET value = '99' WHERE key = 'schema_version'")),
    ("magic-edited", _edit("UPDATE bayesal_meta SET value = 'x' WHERE key = 'magic'")),
    ("pool-index-string", _edit("UPDATE experiments SET pool_index = 'seven' WHERE id = 1")),
    ("attempts-negative", _edit("UPDATE experiments SET attempts = -4 WHERE id = 1")),
    ("lease-of-a-dead-process", _edit("CREATE TABLE IF NOT EXISTS proposer (id INTEGER PRIMARY KEY, holder TEXT, "
                                      "pid INTEGER, host TEXT, lease REAL, since REAL)")),
    ("half-done", _half_done),
]


@pytest.mark.parametrize("make", [c[1] for c in STORE_CASES], ids=[c[0] for c in STORE_CASES])
@pytest.mark.parametrize("command", ["status", "resume", "report"])
def test_hostile_stores(fuzz, make, command):
    make(fuzz)
    path = fuzz / "s.db"
    before = done_rows(path)
    args = {"status": ["status", "--store", path, "--json"], "resume": ["resume", "--store", path, "--quiet"],
            "report": ["report", "--store", path, "--out", fuzz / "r", "--quiet"]}[command]
    code, out, err = cli(*args)
    check(code, out, err)
    after = done_rows(path)
    assert all(after.get(i) == row for i, row in before.items()), "a stored result was lost"


ORACLE_CASES = [
    ("raises", [], False),
    ("exits", [], False),
    ("raises_later", ["--max-failures", "2"], True),
    ("exits_later", ["--max-failures", "2"], True),
    ("exits_none_later", ["--max-failures", "2"], True),
    ("nan_later", ["--max-failures", "2"], True),
    ("inf_later", ["--max-failures", "2"], True),
    ("huge_later", ["--max-failures", "2"], True),
    ("huger_later", ["--max-failures", "2"], True),
    ("shape_later", ["--max-failures", "2"], True),
    ("string_later", ["--max-failures", "2"], True),
    ("dict_later", ["--max-failures", "2"], True),
    ("bad_cost_later", ["--max-failures", "2"], True),
    ("nan_cost_later", ["--max-failures", "2"], True),
    ("keyerror_later", ["--max-failures", "2", "--retries", "1"], True),
    ("hangs_later", ["--max-failures", "2", "--timeout", "0.3"], True),
]


@pytest.mark.parametrize("name, extra, may_fail", ORACLE_CASES, ids=[c[0] for c in ORACLE_CASES])
def test_faulty_oracles(fuzz, name, extra, may_fail):
    path = fuzz / "s.db"
    code, out, err = cli(*RUN, "--store", path, "--oracle", f"fz_fuzz_oracles:{name}", "--out", fuzz / "o", *extra)
    check(code, out, err, may_fail)
    if not may_fail:
        assert code == 2 and not path.exists()  # the check before the campaign: nothing stored
        return
    labels_file = fuzz / "labels.jsonl"
    labels = [json.loads(line) for line in labels_file.read_text().splitlines()] if labels_file.exists() else []
    rows = done_rows(path)
    stored = [[x, y] for x, y in rows.values()]
    # every label handed back (but the one of the check, not stored) is a done experiment
    assert all(pair in stored for pair in labels[1:]), (labels, stored)
    with sqlite3.connect(path) as conn:
        states = [s for (s,) in conn.execute("SELECT state FROM experiments")]
    conn.close()
    assert "running" not in states
    if code == 1:
        assert "experiments failed" in err
    status = json.loads(cli("status", "--store", path, "--json")[1])
    assert status["failed"] >= 1 or code == 0


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["run", "--pool", "5"],
    ["run", "--problem", "forrester", "--budget", "3", "--quiet", "--out", "{tmp}/file/sub"],
    ["run", "--problem", "forrester", "--budget", "3", "--quiet", "--store", "{store}", "--oracle",
     "fz_fuzz_oracles:exits"],
    ["status", "--store", "{tmp}"],
])
def test_hostile_command_lines_as_real_processes(fuzz, args):
    proc = bayesal(*fill(args, fuzz), extra_path=fuzz, timeout=120)
    check(proc.returncode, proc.stdout, proc.stderr)
    assert proc.returncode == 2


@pytest.mark.slow
def test_faulty_oracle_in_worker_processes(fuzz):
    path = fuzz / "s.db"
    proc = bayesal(*RUN, "--store", str(path), "--oracle", "fz_fuzz_oracles:exits_later", "--executor", "process",
                   "--workers", "1", "--max-failures", "2", "--out", str(fuzz / "o"), extra_path=fuzz, timeout=300)
    check(proc.returncode, proc.stdout, proc.stderr, may_fail=True)
    assert "running" not in [e for e in done_rows(path)]
