"""Markdown tables for docs/results.md from bench/results/*.json (written by `etstpm evaluate`).

    .venv/bin/python bench/training/results_table.py [bench/results/*.json]

Prints: one summary row per result file, then the operating points, then per-defect rows, then the measured variants
(bench/results/variants/*.json, written by bench/training/variants.py). Numbers are copied, never recomputed, except
the operating points of result files written before `evaluate` reported them: those are computed from the file's
per-image scores (`images`) with the same code (etstpm.operating_point), and the table says so.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from etstpm.operating_point import goods_needed, operating_points
from etstpm.run import run_method

DATASETS = {"magnetic_tile": "MTD", "grid": "MVTec grid (subset)", "screw": "MVTec screw",
            "hazelnut_toy": "hazelnut_toy"}


def _f(v, digits: int = 3) -> str:
    return "null" if v is None else f"{v:.{digits}f}"


def _method(r: dict) -> str:
    if r.get("method") == "membank":
        mb = r.get("membank") or {}
        rule = f", top {mb['score_top']:.0%} score" if mb.get("score_top") else ""
        return ("memory bank" if r["finetune"] == "none" else f"memory bank, ET teacher ({r['finetune']})") + rule
    student = (r.get("train_config") or {}).get("student") or {}
    name = "STPM (plain)" if r["finetune"] == "none" else f"ET-STPM ({r['finetune']})"
    ema = f", weight average {student['ema_epochs']:g} epochs" if student.get("ema_epochs") else ""
    return name + (", cosine lr" if student.get("schedule", "constant") == "cosine" else "") + ema


def _cmd(path: Path, r: dict) -> str:
    if r.get("method") == "membank":
        flags = " ".join(f"{k} {v}" for k, v in _membank_flags(r))
        ft = r["finetune"] if r["finetune"] == "none" else "rotation"
        return f"`bench/training/run_one.sh {path.stem} {r['data']} {r['category']} 0 {ft} --method membank{flags}`"
    tag = path.stem.rsplit("-e", 1)[0]
    ft = r["finetune"] if r["finetune"] in ("none", "rotation") else "auto"
    extra = ((r.get("train_config") or {}).get("finetune") or {}).get("extra_roots") or []
    roots = f" --finetune-roots {' '.join(extra)}" if extra else ""
    if not extra and r["finetune"] == "classes":
        roots = " --finetune-roots <the other three data roots, see docs/results.md>"  # file predates train_config
    student = (r.get("train_config") or {}).get("student") or {}
    flags = f" --lr-schedule {student['schedule']}" if student.get("schedule") else ""
    flags += f" --ema-epochs {student['ema_epochs']:g}" if student.get("ema_epochs") else ""
    seed = f"SEED={r['seed']} " if r.get("seed") else ""
    return f"`{seed}bench/training/run_one.sh {tag} {r['data']} {r['category']} {r['epochs']} {ft}{roots}{flags}`"


def _membank_flags(r: dict) -> list[tuple[str, str]]:
    """Flags that differ from the membank defaults, so the command reproduces the cell."""
    mb = r.get("membank") or {}
    flags = [(" --score-top", str(mb["score_top"]))] if mb.get("score_top") else []
    if mb.get("coreset_ratio") not in (None, 0.02):  # cells fitted under the earlier 1 % default
        flags.append((" --coreset-ratio", str(mb["coreset_ratio"])))
    if "feature_width" not in mb:  # fitted before the width budget existed: full width
        flags.append((" --feature-dim", "0"))
    if ((r.get("train_config") or {}).get("calibration")) == "holdout":
        flags.append((" --calibration", "holdout"))
    return flags


def load(paths: list[Path]) -> list[tuple[Path, dict]]:
    out = [(p, json.loads(p.read_text())) for p in paths]
    out = [(p, r) for p, r in out if isinstance(r, dict) and r.get("format") == "etstpm-eval/1"]
    return sorted(out, key=lambda pr: (pr[1]["category"], run_method(pr[1]) != "membank", pr[1]["epochs"],
                                       pr[1]["finetune"] != "none"))


def summary(rows: list[tuple[Path, dict]]) -> str:
    head = ("| dataset | method | protocol | epochs | image size | image AUROC | pixel AUROC | AU-PRO | "
            "FRR test/good @ calibrated thr | detection @ thr | train s/epoch | teacher fine-tune s | "
            "inference ms/image | wall time (train+eval) | result file |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for p, r in rows:
        tw = r["train_wall_time_s"]
        wall = (tw.get("finetune") or 0) + (tw.get("student") or 0) + (tw.get("membank") or 0) + r["eval_wall_time_s"]
        v = r.get("verdict") or {}
        lines.append(
            f"| {DATASETS.get(r['category'], r['category'])} | {_method(r)} | {r['protocol']} | {r['epochs']} | "
            f"{r['image_size']} | {_f(r['image_auroc'])} | {_f(r['pixel_auroc'])} | {_f(r['aupro'])} | "
            f"{_f(v.get('false_reject_rate'), 2)} | {_f(v.get('detection_rate'), 2)} | "
            f"{_f(tw.get('student_per_epoch'), 0)} | {_f(tw.get('finetune'), 0)} | "
            f"{_f(r['inference_ms_per_image'], 0)} | {wall / 60:.1f} min | `{p.as_posix()}` |")
    return "\n".join(lines)


def _ops(r: dict) -> tuple[dict | None, str]:
    """The result's operating points and where they come from (module docstring)."""
    if r.get("operating_points"):
        return r["operating_points"], "evaluate"
    imgs = r.get("images") or []
    if not imgs:
        return None, "-"
    labels = np.array([i["label"] for i in imgs])
    scores = np.array([i["score"] for i in imgs], dtype=np.float64)
    return operating_points(labels, scores), "recomputed from committed scores"


def _at(ops: dict | None, frr: float) -> str:
    if ops is None:
        return "-"
    p = ops["at_frr"][f"{frr:g}"]
    if not p["resolvable"]:
        return f"not resolvable ({p['n_good']} good < {goods_needed(frr)})"
    return f"{p['detection_rate']:.3f} ({p['detected']}/{p['n_defective']}; {p['false_rejects']} good rejected)"


def _calibrated(r: dict) -> tuple[str, str]:
    """(FRR on test/good at the calibrated threshold, what the calibration promised)."""
    v = r.get("verdict") or {}
    if v.get("false_reject_rate") is None:
        return "-", "-"
    frr = f"{v['false_reject_rate']:.2%} ({v['false_rejects']}/{v['n_good']})"
    c = v.get("calibration") or {}
    if c.get("frr_bound") is None:
        return frr, f"{v.get('method')} (no stated bound)"
    ac = v.get("against_calibration") or {}
    src = (c.get("source") or {}).get("kind", "?")
    promise = (f"<= {c['frr_bound']:.2%} at {c['confidence']:.0%} (target {c['frr_target']:.0%}; {c['images']} "
               f"{src} images, {'met' if c['target_met'] else 'too few: needs ' + str(c['images_needed'])}); "
               f"P(>= {v['false_rejects']} at bound) = {ac.get('p_at_bound', float('nan')):.2g}")
    return frr, promise


def operating(rows: list[tuple[Path, dict]]) -> str:
    head = ("| dataset | method | epochs | test good / defective | detection @ 1 % FRR | detection @ 0.1 % FRR | "
            "detection @ 0 false rejects | FRR test/good @ calibrated thr | calibration's promise | source | "
            "result file |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for p, r in rows:
        ops, source = _ops(r)
        z = (ops or {}).get("at_zero_false_rejects") or {}
        zero = "-" if z.get("detection_rate") is None else f"{z['detection_rate']:.3f}"
        frr, promise = _calibrated(r)
        n_good = r["n_images"] - r["n_defective"]
        lines.append(f"| {DATASETS.get(r['category'], r['category'])} | {_method(r)} | {r['epochs']} | "
                     f"{n_good} / {r['n_defective']} | {_at(ops, 0.01)} | {_at(ops, 0.001)} | {zero} | {frr} | "
                     f"{promise} | {source} | `{p.as_posix()}` |")
    return "\n".join(lines)


def calibration_sources(rows: list[tuple[Path, dict]]) -> str:
    """Result files whose threshold states a guarantee: the calibration source against the test at that threshold."""
    head = ("| dataset | calibration | images (k-th of n) | threshold | FRR bound @ confidence | "
            "test FRR @ threshold | P(>= that at bound) | detection @ threshold | detection @ 1 % FRR | "
            "image AUROC | fit s (k-fold s) | eval s | result file |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for p, r in rows:
        v = r.get("verdict") or {}
        c = v.get("calibration") or {}
        if c.get("frr_bound") is None:
            continue
        src = c.get("source") or {}
        kind = f"k-fold ({src.get('folds')} folds)" if src.get("kind") == "kfold" else src.get("kind", "?")
        ops, _ = _ops(r)
        tw = r["train_wall_time_s"]
        kf = (r.get("train_wall_time_s") or {}).get("kfold")
        lines.append(
            f"| {DATASETS.get(r['category'], r['category'])} | {kind} | {c['k']} of {c['images']} | "
            f"{v['threshold_raw']:.4g} | {c['frr_bound']:.2%} @ {c['confidence']:.0%}"
            f"{'' if c['target_met'] else ' (too few: target needs ' + str(c['images_needed']) + ')'} | "
            f"{v['false_reject_rate']:.2%} ({v['false_rejects']}/{v['n_good']}) | "
            f"{(v.get('against_calibration') or {}).get('p_at_bound', float('nan')):.2g} | "
            f"{v['detection_rate']:.3f} | {_at(ops, 0.01)} | {_f(r['image_auroc'])} | "
            f"{_f(tw.get('membank'), 0)} ({_f(kf, 0) if kf is not None else '-'}) | {_f(r['eval_wall_time_s'], 0)} | "
            f"`{p.as_posix()}` |")
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


def _per_defect_cells(r: dict, names: list[str]) -> str:
    return " | ".join(_f(r["per_defect"].get(n)) for n in names)


def variants(paths: list[Path]) -> str:
    """Score rules per run, then input variants; per-defect columns are image AUROC."""
    found = [(p, json.loads(p.read_text())) for p in paths]
    scores = [(p, v) for p, v in found if v.get("kind") == "score"]
    inputs = [(p, v) for p, v in found if v.get("kind") == "input"]
    out = []
    for category in sorted({v["category"] for _, v in scores}):
        # One row per rule: image AUROC of each run, then the per-defect image AUROC of the first (plain) run.
        same = sorted(((p, v) for p, v in scores if v["category"] == category),
                      key=lambda pv: pv[1]["finetune"] != "none")
        out.append(f"{DATASETS.get(category, category)}:")
        out.append("")
        first = same[0][1]
        names = sorted(next(iter(first["rules"].values()))["per_defect"])
        runs = " | ".join(f"{_method(v)}, {v['epochs']} ep" for _, v in same)
        head = f"| image score rule | {runs} | {' | '.join(f'{n} ({_method(first)})' for n in names)} |"
        out += [head, "|" + "---|" * (head.count("|") - 1)]
        for rule, r in first["rules"].items():
            cells = " | ".join(_f(v["rules"][rule]["image_auroc"]) for _, v in same)
            out.append(f"| `{rule}` | {cells} | {_per_defect_cells(r, names)} |")
        out += ["", "result files: " + ", ".join(f"`{p.as_posix()}`" for p, _ in same), ""]
        for _, v in same:
            corr = ", ".join(f"{k} {'n/a' if r is None else f'{r:+.2f}'}"
                             for k, r in (v.get("good_score_correlation") or {}).items())
            out += [f"good test images, {_method(v)}: Pearson r of the `max` score with {corr}", ""]
    if inputs:
        names = sorted(inputs[0][1]["result"]["per_defect"])
        head = (f"| input variant (plain STPM) | epochs | image AUROC | {' | '.join(names)} | "
                f"student s/epoch | result file |")
        out += [head, "|" + "---|" * (head.count("|") - 1)]
        for p, v in sorted(inputs, key=lambda pv: pv[1]["variant"] != "squash"):
            hist = v["student_history"]
            per_epoch = sum(h["wall_s"] for h in hist) / len(hist)
            out.append(f"| `{v['variant']}` | {v['epochs']} | {_f(v['result']['image_auroc'])} | "
                       f"{_per_defect_cells(v['result'], names)} | {per_epoch:.0f} | `{p.as_posix()}` |")
    return "\n".join(out)


def membank_rules(paths: list[Path]) -> str:
    """One row per image-score rule, one column per dataset (bench/training/membank_rules.py files)."""
    found = [json.loads(p.read_text()) for p in paths]
    found = sorted((v for v in found if v.get("kind") == "membank-score"), key=lambda v: v["category"])
    if not found:
        return ""
    head = "| memory-bank image score rule | " + " | ".join(
        f"{DATASETS.get(v['category'], v['category'])} ({v['n_good']} good / {v['n_images'] - v['n_good']} defective)"
        for v in found) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for rule in found[0]["rules"]:
        lines.append(f"| `{rule}` | " + " | ".join(_f(v["rules"][rule]["image_auroc"]) for v in found) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(Path("bench/results").glob("*.json"))
    rows = load(paths)
    machine = rows[0][1]["machine"] if rows else {}
    print(summary(rows))
    print()
    print(operating(rows))
    print()
    print(calibration_sources(rows))
    print()
    print(per_defect(rows))
    print()
    print(commands(rows))
    print()
    print(variants(sorted(Path("bench/results/variants").glob("*.json"))))
    print()
    print(membank_rules(sorted(Path("bench/results/variants").glob("*.json"))))
    print()
    print(f"machine: {machine.get('processor')}, {machine.get('cpu_count')} cores, torch {machine.get('torch')}, "
          f"{machine.get('torch_threads')} threads, device {machine.get('device')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
