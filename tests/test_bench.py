"""The benchmark runner: one table against targets and a JSON report, through fake benchmarks."""

from __future__ import annotations

import importlib
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.cli import main as cli_main
from bench import runner
from bench.runner import Row, at_least, at_most, within


def fake_module(name: str, run: Callable[[bool], dict]) -> types.ModuleType:
    module = types.ModuleType(f"bench.{name}")
    module.run = run
    module.rows = lambda result: [
        Row("rate", result["rate"], "texts/s", digits=0),
        at_least("ratio", result["ratio"], 0.9, "x"),
        at_most("p50", 4.0, 10, "ms"),
        within("difference", None, 0.005),
    ]
    return module


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Benchmarks ``fake`` (instant) and ``broken`` (raises), outside the default set."""

    def broken(quick: bool) -> dict:
        raise RuntimeError("no data")

    for name, run in {
        "fake": lambda quick: {"quick": quick, "rate": 1234.4, "ratio": 0.5},
        "broken": broken,
    }.items():
        monkeypatch.setitem(sys.modules, f"bench.{name}", fake_module(name, run))
        monkeypatch.setitem(runner.BENCHES, name, False)


def test_one_table_with_targets_and_a_json_report(fakes, tmp_path: Path, capsys) -> None:
    path = tmp_path / "results.json"
    assert runner.main(["--only", "fake", "--quick", "--json", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    header = table.index(next(line for line in table if line.startswith("| bench")))
    assert [cell.strip() for cell in table[header].strip("|").split("|")] == [
        "bench",
        "measure",
        "value",
        "target",
        "ok",
    ]
    body = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[header + 2 :]]
    assert body == [
        ["fake", "rate", "1,234 texts/s", "", ""],
        ["fake", "ratio", "0.50 x", ">= 0.9 x", "FAIL"],
        ["fake", "p50", "4.00 ms", "<= 10 ms", "pass"],
        ["fake", "difference", "not run", "within ±0.005", ""],
    ]
    report = json.loads(path.read_text())
    assert report["quick"] is True
    assert report["benches"]["fake"]["result"] == {"quick": True, "rate": 1234.4, "ratio": 0.5}
    assert report["rows"][1] == {
        "bench": "fake",
        "measure": "ratio",
        "value": 0.5,
        "unit": "x",
        "target": ">= 0.9 x",
        "ok": False,
        "digits": 2,
    }
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["cpu"] and machine["date"]
    assert {"torch", "onnxruntime", "faiss-cpu"} <= set(machine["versions"])


def test_a_crash_is_reported_and_the_rest_still_runs(fakes, tmp_path: Path, capsys) -> None:
    path = tmp_path / "results.json"
    assert runner.main(["--only", "broken,fake", "--json", str(path)]) == 1
    out = capsys.readouterr().out
    assert "crashed: RuntimeError('no data')" in out and "| fake " in out
    report = json.loads(path.read_text())
    assert report["benches"]["broken"]["crashed"] == "RuntimeError('no data')"
    assert report["benches"]["fake"]["result"]["quick"] is False


def test_embedsearch_bench_runs_the_same_runner(capfd) -> None:
    # The runner runs in a child process (bench/ is no package of the install): its own
    # argument check answers.
    with pytest.raises(SystemExit) as raised:
        cli_main(["bench", "--only", "nope"])
    assert raised.value.code == 2
    assert "choose from embeddings, backends" in capfd.readouterr().err


def test_unknown_benchmark_names_the_choices(capsys) -> None:
    with pytest.raises(SystemExit):
        runner.main(["--only", "nope"])
    assert "choose from embeddings, backends" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(runner.BENCHES))
def test_every_benchmark_has_the_common_interface(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert callable(module.run) and callable(module.rows)


def test_embedsearch_bench_outside_a_checkout_says_where_to_run_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    # As in a wheel: no bench/ beside app/.
    monkeypatch.setattr("app.cli.admin.PROJECT_ROOT", tmp_path)
    with pytest.raises(SystemExit) as raised:
        cli_main(["bench", "--quick"])
    assert raised.value.code == 2 and "source checkout" in capsys.readouterr().err


WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:8000/v1/embeddings
  1 threads and 16 connections
  Latency Distribution
     50%    5.21ms
     75%    7.02ms
     90%    9.90ms
     99%    1.02s
  1500 requests in 3.00s, 3.1MB read
  Non-2xx or 3xx responses: 3
Requests/sec:    500.12
"""


def test_wrk_runs_are_read_from_its_report(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from bench import wrk

    seen = {}

    def fake_run(command: list[str], **kwargs) -> object:
        seen["command"] = command
        return types.SimpleNamespace(stdout=WRK_OUTPUT)

    monkeypatch.setattr(wrk.subprocess, "run", fake_run)
    result = wrk.wrk("http://127.0.0.1:8000", tmp_path / "s.lua", 16, 3)
    assert result == {
        "requests_per_s": 500.12,
        "p50_ms": 5.21,
        "p99_ms": 1020.0,
        "non_2xx": 3,
        "socket_errors": None,
    }
    assert "-c16" in seen["command"] and "-d3s" in seen["command"]
    body = json.dumps({"input": 'a "quoted" text'})
    script = wrk.lua_script([body])
    assert 'wrk.method = "POST"' in script and json.dumps(body) in script


def test_p99_is_the_nearest_rank() -> None:
    assert runner.p99([5.0]) == 5.0
    assert runner.p99([1.0, 2.0]) == 1.0
    assert runner.p99([float(n) for n in range(1, 101)]) == 99.0
    assert runner.p99([float(n) for n in range(1, 201)]) == 198.0


def test_wrk_fixed_work_sends_every_request_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import wrk

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.content.decode())
        return httpx.Response(500 if request.content == b'"bad"' else 200, json={})

    client = httpx.Client
    mock = httpx.MockTransport(answer)
    monkeypatch.setattr(wrk.httpx, "Client", lambda **kwargs: client(transport=mock, **kwargs))
    requests = [json.dumps(f"body {n}") for n in range(10)] + ['"bad"']
    result = wrk.fixed_work("http://127.0.0.1:8000", requests, 3)
    assert sorted(seen) == sorted(requests)
    assert result["non_2xx"] == 1
    assert result["requests_per_s"] == pytest.approx(11 / result["seconds"])
    assert 0 < result["p50_ms"] <= result["p99_ms"]


def test_wrk_rows_say_not_run_without_wrk(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import wrk

    monkeypatch.setattr(wrk.shutil, "which", lambda name: None)
    result = wrk.run(quick=True)
    assert "not installed" in result["skipped"]
    [row] = wrk.rows(result)
    assert row.value is None and row.shown() == "not run"


def test_fusion_caches_vectors_by_text_across_runs(tmp_path: Path) -> None:
    from bench.fusion import CachedEmbedder
    from tests.support.fakes import FakeEncoder

    class Counting(FakeEncoder):
        encoded = 0

        def encode(self, batch: list[list[int]]) -> np.ndarray:
            Counting.encoded += len(batch)
            return super().encode(batch)

    first = CachedEmbedder(Counting(), "fake", tmp_path, "fake-build")
    vectors = first.embed(["b text", "a text", "b text"])
    assert Counting.encoded == 2  # each distinct text once
    again = CachedEmbedder(Counting(), "fake", tmp_path, "fake-build").embed(["a text", "b text"])
    assert Counting.encoded == 2  # read from disk
    np.testing.assert_array_equal(again, vectors[[1, 0]])
    CachedEmbedder(Counting(), "fake", tmp_path, "another-build").embed(["a text"])
    assert Counting.encoded == 3  # another build's vectors are its own
