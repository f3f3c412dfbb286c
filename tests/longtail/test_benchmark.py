"""longtail.benchmark keeps every (seed, method) result, so one method can be rerun alone
and the table is rebuilt from all of them (the training itself is covered by the task tests)."""
import json

from longtail import benchmark


def _fake_run_seed(scores):
    def run_seed(seed, methods, tmp):
        out = {m: {k: scores[m] + seed for k in benchmark.COLUMNS} for m in methods}
        return {**out, "_upper": {"top1": 90.0}}
    return run_seed


def test_rerunning_one_method_replaces_only_its_rows(tmp_path, monkeypatch):
    out = str(tmp_path)
    monkeypatch.setattr(benchmark, "run_seed", _fake_run_seed({"ce": 60.0, "remix": 10.0}))
    benchmark.main(["--seeds", "0", "1", "--methods", "ce", "remix", "--out", out])
    monkeypatch.setattr(benchmark, "run_seed", _fake_run_seed({"remix": 70.0}))
    benchmark.main(["--seeds", "0", "1", "--methods", "remix", "--out", out])
    runs = json.load(open(tmp_path / benchmark.RUNS_FILE))
    assert sorted(runs) == ["0", "1"]
    assert runs["1"]["ce"]["top1"] == 61.0 and runs["1"]["remix"]["top1"] == 71.0
    table = open(tmp_path / "longtail.md").read()
    assert "| ce | 60.5 ± 0.5 |" in table and "| remix | 70.5 ± 0.5 |" in table
    assert "2 seeds (0, 1)" in table and (tmp_path / "longtail.png").stat().st_size > 1000
