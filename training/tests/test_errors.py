"""One error family: every expected failure is an EtstpmError, and `etstpm` reports it as one line, exit status 2."""
from __future__ import annotations

from pathlib import Path

import pytest

from etstpm import data, errors, metrics, run, weights
from etstpm.cli import main


def test_every_toolkit_error_shares_the_base_and_stays_importable_where_it_was() -> None:
    where = {"DatasetError": data, "WeightsError": weights, "RunError": run, "MetricError": metrics}
    for name, module in where.items():
        cls = getattr(errors, name)
        assert getattr(module, name) is cls
        assert issubclass(cls, errors.EtstpmError)
    assert issubclass(errors.ConfigError, errors.EtstpmError)
    assert issubclass(errors.EtstpmError, ValueError)


def test_a_metric_error_is_one_line_and_exit_2_not_a_traceback(tmp_path: Path, capsys) -> None:
    # Before the common base, cli.main did not catch MetricError: this ended in a traceback.
    rc = main(["evaluate", "--run", str(tmp_path / "nope"), "--data", str(tmp_path), "--category", "x",
               "--json", str(tmp_path / "o.json"), "--fpr-limit", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == "etstpm evaluate: error: fpr_limit must be in (0, 1], got 0.0\n"
    assert not (tmp_path / "o.json").exists()


def test_evaluate_is_a_registered_subcommand(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--help"])
    assert e.value.code == 0
    assert "--fpr-limit" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--run", "r", "--data", "d", "--category", "c", "--json", "o", "--batch-size", "0"])
    assert e.value.code == 2
    assert "--batch-size: must be >= 1, got 0" in capsys.readouterr().err
