"""How far k-fold calibration scores sit above the shipped bank's scores of unseen good parts.

    .venv/bin/python bench/training/calib_shift.py --json bench/results/calib-shift.json RUN:EVAL.json [...]

RUN: a run folder calibrated with --calibration kfold (its run.json holds every training image's leave-fold-out
score); EVAL.json: `etstpm evaluate` of that run (per-image scores of the test set). Prints and writes the quantiles
of both, and their ratio: the fold banks hold 4/5 of the patches, so their distances run higher (docs/results.md,
Operating point).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

QUANTILES = (0.5, 0.9, 0.99, 1.0)


def shift(run: Path, eval_json: Path) -> dict:
    meta = json.loads((run / "run.json").read_text())
    if not meta.get("kfold"):
        raise SystemExit(f"{run}: no k-fold scores (train with --calibration kfold)")
    kfold = np.array(list(meta["kfold"]["scores"].values()), dtype=np.float64)
    r = json.loads(eval_json.read_text())
    good = np.array([i["score"] for i in r["images"] if i["label"] == 0], dtype=np.float64)
    qk, qg = np.quantile(kfold, QUANTILES), np.quantile(good, QUANTILES)
    return {"run": str(run), "eval": str(eval_json), "category": meta["category"], "folds": meta["kfold"]["folds"],
            "n_kfold": int(kfold.size), "n_test_good": int(good.size),
            "quantiles": [f"{q:g}" for q in QUANTILES],
            "kfold_scores": [round(float(v), 4) for v in qk], "test_good_scores": [round(float(v), 4) for v in qg],
            "ratio": [round(float(a / b), 3) for a, b in zip(qk, qg)]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pairs", nargs="+", metavar="RUN:EVAL.json")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    out = [shift(Path(p.split(":", 1)[0]), Path(p.split(":", 1)[1])) for p in a.pairs]
    for o in out:
        print(f"{o['category']}: quantiles {o['quantiles']} k-fold {o['kfold_scores']} test good "
              f"{o['test_good_scores']} ratio {o['ratio']}")
    Path(a.json).write_text(json.dumps({"command": "bench/training/calib_shift.py " + " ".join(a.pairs),
                                        "results": out}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
