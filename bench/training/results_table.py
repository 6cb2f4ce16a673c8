"""Markdown tables for docs/results.md from bench/results/*.json (written by `etstpm evaluate`).

    .venv/bin/python bench/training/results_table.py [bench/results/*.json]

Prints: one summary row per result file, then per-defect rows; numbers are copied, never recomputed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

DATASETS = {"magnetic_tile": "MTD", "grid": "MVTec grid (subset)", "screw": "MVTec screw"}


def _f(v, digits: int = 3) -> str:
    return "null" if v is None else f"{v:.{digits}f}"


def _method(r: dict) -> str:
    return "STPM (plain)" if r["finetune"] == "none" else f"ET-STPM ({r['finetune']})"


def _cmd(path: Path, r: dict) -> str:
    tag = path.stem.rsplit("-e", 1)[0]
    ft = r["finetune"] if r["finetune"] in ("none", "rotation") else "auto"
    extra = ((r.get("train_config") or {}).get("finetune") or {}).get("extra_roots") or []
    roots = f" --finetune-roots {' '.join(extra)}" if extra else ""
    if not extra and r["finetune"] == "classes":
        roots = " --finetune-roots <the other three data roots, see docs/results.md>"  # file predates train_config
    return f"`bench/training/run_one.sh {tag} {r['data']} {r['category']} {r['epochs']} {ft}{roots}`"


def load(paths: list[Path]) -> list[tuple[Path, dict]]:
    out = [(p, json.loads(p.read_text())) for p in paths]
    out = [(p, r) for p, r in out if isinstance(r, dict) and r.get("format") == "etstpm-eval/1"]
    return sorted(out, key=lambda pr: (pr[1]["category"], pr[1]["epochs"], pr[1]["finetune"] != "none"))


def summary(rows: list[tuple[Path, dict]]) -> str:
    head = ("| dataset | method | protocol | epochs | image size | image AUROC | pixel AUROC | AU-PRO | "
            "FRR test/good @ calibrated thr | detection @ thr | train s/epoch | teacher fine-tune s | "
            "inference ms/image | wall time (train+eval) | result file |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for p, r in rows:
        tw = r["train_wall_time_s"]
        wall = (tw.get("finetune") or 0) + (tw.get("student") or 0) + r["eval_wall_time_s"]
        v = r.get("verdict") or {}
        lines.append(
            f"| {DATASETS.get(r['category'], r['category'])} | {_method(r)} | {r['protocol']} | {r['epochs']} | "
            f"{r['image_size']} | {_f(r['image_auroc'])} | {_f(r['pixel_auroc'])} | {_f(r['aupro'])} | "
            f"{_f(v.get('false_reject_rate'), 2)} | {_f(v.get('detection_rate'), 2)} | "
            f"{_f(tw.get('student_per_epoch'), 0)} | {_f(tw.get('finetune'), 0)} | "
            f"{_f(r['inference_ms_per_image'], 0)} | {wall / 60:.1f} min | `{p.as_posix()}` |")
    return "\n".join(lines)


def per_defect(rows: list[tuple[Path, dict]]) -> str:
    head = "| dataset | method | epochs | defect | images | image AUROC | pixel AUROC | AU-PRO | detected @ thr |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for _, r in rows:
        v = (r.get("verdict") or {}).get("per_defect", {})
        for name, d in r["per_defect"].items():
            det = f"{v[name]['detected']}/{v[name]['n']}" if name in v else "-"
            lines.append(f"| {DATASETS.get(r['category'], r['category'])} | {_method(r)} | {r['epochs']} | {name} | "
                         f"{d['n_defective']} | {_f(d['image_auroc'])} | {_f(d['pixel_auroc'])} | {_f(d['aupro'])} | "
                         f"{det} |")
    return "\n".join(lines)


def commands(rows: list[tuple[Path, dict]]) -> str:
    return "\n".join(f"- {p.name}: {_cmd(p, r)}" for p, r in rows)


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(Path("bench/results").glob("*.json"))
    rows = load(paths)
    machine = rows[0][1]["machine"] if rows else {}
    print(summary(rows))
    print()
    print(per_defect(rows))
    print()
    print(commands(rows))
    print()
    print(f"machine: {machine.get('processor')}, {machine.get('cpu_count')} cores, torch {machine.get('torch')}, "
          f"{machine.get('torch_threads')} threads, device {machine.get('device')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
