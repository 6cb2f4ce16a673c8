"""Command line: `etstpm train | evaluate | calibrate | export`."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .argtypes import positive_int
from .errors import EtstpmError
from .methods import METHODS
from .train import DEFAULT_METHOD


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fit a detector (memory bank, or ET-STPM student) and calibrate it "
                                    "(writes a run folder)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="dataset root in MVTec AD layout (<root>/<category>/train/good ...)")
    p.add_argument("--category", required=True, help="category folder under --data")
    p.add_argument("--weights", required=True,
                   help="'imagenet' (torchvision download) or a resnet18 state_dict file (original or BN-folded)")
    p.add_argument("--out", required=True, help="run folder to create (or continue with --resume)")
    p.add_argument("--method", choices=list(METHODS), default=DEFAULT_METHOD,
                   help="membank: nearest-neighbour memory bank of the teacher's patch features (PatchCore, no "
                        "training); stpm: student distilled from the teacher (ET-STPM). docs/training.md compares them")
    p.add_argument("--image-size", type=int, default=256, help="images are resized to SIZE x SIZE")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--holdout", type=float, default=None,
                   help="fraction of train/good kept out of fitting for calibration (default 0.1 under --calibration "
                        "holdout); given with --calibration auto, it selects the hold-out")
    p.add_argument("--max-train-images", type=positive_int, default=None,
                   help="use at most N training images (quick checks only)")
    p.add_argument("--finetune", choices=["auto", "classes", "rotation", "none"], default="auto",
                   help="teacher fine-tuning task; auto = none for membank, and for stpm classes with >= 2 "
                        "categories, else rotation; none = the ImageNet teacher as is (plain STPM)")
    p.add_argument("--finetune-roots", nargs="*", default=[], metavar="ROOT",
                   help="more MVTec-layout roots whose categories join the 'classes' task")
    p.add_argument("--finetune-labelled", default=None, metavar="DIR",
                   help="DIR/<category>/... labelled images (e.g. defects) for the 'classes' task; "
                        "must not overlap the evaluation test folder")
    p.add_argument("--finetune-head-epochs", type=int, default=1)
    p.add_argument("--finetune-full-epochs", type=int, default=2)
    p.add_argument("--finetune-lr-head", type=float, default=0.1, help="SGD learning rate, head-only epochs")
    p.add_argument("--finetune-lr", type=float, default=0.001, help="SGD learning rate, all-unfrozen epochs")
    p.add_argument("--paper-protocol", action="store_true",
                   help="fine-tune the teacher on test images too, as the paper did; results are marked leaked")
    p.add_argument("--frr", type=float, default=0.01, help="calibration: target false-reject rate on new good parts")
    p.add_argument("--confidence", type=float, default=0.9,
                   help="calibration: probability with which the false-reject rate stays <= --frr (docs/training.md, "
                        "Calibration, says how many good images that needs)")
    p.add_argument("--calibration", choices=["auto", "holdout", "kfold"], default="auto",
                   help="where calibration's good-image scores come from: kfold = every train/good image scored "
                        "against a memory bank fitted without its fold (membank only); holdout = --holdout of "
                        "train/good kept out of the fit; auto = kfold for membank (holdout when --holdout is given), "
                        "holdout for stpm")
    p.add_argument("--folds", type=int, default=5, help="--calibration kfold: number of folds")
    p.add_argument("--calib-data", default=None, metavar="DIR",
                   help="a separate folder of good images (e.g. captured on the line) to calibrate on; all of "
                        "train/good then fits the model")
    p.add_argument("--no-calibrate", action="store_true", help="skip calibration at the end")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    for method in METHODS.values():
        method.add_arguments(p)
    p.set_defaults(func=_cmd_train)


def _cmd_train(a: argparse.Namespace) -> int:
    from .finetune import FinetuneConfig
    from .train import TrainConfig, train

    calibration = a.calibration
    if a.holdout is not None and calibration == "auto":
        calibration = "holdout"  # an explicit hold-out fraction asks for a hold-out
    cfg = TrainConfig(
        data=a.data, category=a.category, weights=a.weights, out=a.out, method=a.method,
        image_size=a.image_size, seed=a.seed,
        device=a.device, holdout=0.1 if a.holdout is None else a.holdout, max_train_images=a.max_train_images,
        finetune=FinetuneConfig(mode=a.finetune, head_epochs=a.finetune_head_epochs,
                                full_epochs=a.finetune_full_epochs, lr_head=a.finetune_lr_head,
                                lr_full=a.finetune_lr, extra_roots=list(a.finetune_roots),
                                labelled_dir=a.finetune_labelled, paper_protocol=a.paper_protocol,
                                batch_size=a.batch_size),
        resume=a.resume, calibrate=not a.no_calibrate, frr=a.frr, confidence=a.confidence,
        calibration=calibration, folds=a.folds, calib_data=a.calib_data, progress=not a.no_progress,
        # Every method's settings, as in run.json's config (the unused method's are its defaults or the options').
        **{m.config_field: m.config_from_args(a) for m in METHODS.values()},
    )
    run_dir = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 wrote the run
        print(f"run written to {run_dir}")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="image/pixel AUROC and AU-PRO of a run on a test set",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True, help="run folder written by `etstpm train`")
    p.add_argument("--data", required=True, help="dataset root in MVTec AD layout")
    p.add_argument("--category", required=True, help="category folder under --data (its test/ is evaluated)")
    p.add_argument("--json", required=True, metavar="OUT", help="write the results here (JSON)")
    p.add_argument("--figures", default=None, metavar="DIR", help="write PNG figures (maps, ROC curves) here")
    p.add_argument("--figure-samples", type=int, default=2, help="test images per defect type in the map figures")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--image-size", type=int, default=None, help="default: the run's training size")
    p.add_argument("--fpr-limit", type=float, default=0.3, help="AU-PRO integration limit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from .evaluate import evaluate_command

    return evaluate_command(a)


def _add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="choose the decision threshold and score normalization of a run",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--frr", type=float, default=0.01, help="target false-reject rate on new good parts")
    p.add_argument("--confidence", type=float, default=0.9,
                   help="probability with which the false-reject rate stays <= --frr")
    p.add_argument("--good", default=None, metavar="DIR",
                   help="calibrate on this folder of good images (directly inside, or DIR/train/good as the console "
                        "captures them) instead of the run's own calibration images; `etstpm export` then carries it")
    p.add_argument("--val", default=None, metavar="ROOT",
                   help="labelled validation set (MVTec layout, uses its test/ folder): F1-optimal threshold")
    p.add_argument("--val-category", default=None, help="category under --val (default: the run's)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_calibrate)


def _cmd_calibrate(a: argparse.Namespace) -> int:
    from .calibrate import calibrate_run

    cal = calibrate_run(a.run, frr=a.frr, confidence=a.confidence, val_data=a.val, val_category=a.val_category,
                        good_dir=a.good, device=a.device)
    print(json.dumps(cal, indent=2))
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write DIR/model.onnx (one fused graph) and DIR/model.json",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--metrics", default=None, help="evaluation JSON to embed (default: RUN/metrics.json if present)")
    p.add_argument("--name", default=None, help="model name (default: <category>-etstpm)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--allow-uncalibrated", action="store_true",
                   help="export a run without calibration (threshold/normalization null)")
    p.add_argument("--bank-fp16", action="store_true",
                   help="memory bank runs: store the bank as float16 in the ONNX file (half the size; computed in "
                        "float32)")
    p.add_argument("--int8", choices=["tensorrt", "cpu"], default=None, metavar="TARGET",
                   help="write a static-quantized INT8 model (QDQ; backbone convolutions only, calibrated on the "
                        "run's training images, threshold re-calibrated): 'tensorrt' = symmetric int8 activations "
                        "(TensorRT's explicit quantization), 'cpu' = uint8 activations (onnxruntime's fast x86 "
                        "kernels; TensorRT cannot build it). See docs/training.md")
    p.add_argument("--int8-calibration-images", type=positive_int, default=32, metavar="N",
                   help="training images (evenly spread) whose activations set the INT8 ranges")
    p.set_defaults(func=_cmd_export)


def _cmd_export(a: argparse.Namespace) -> int:
    from .export import export_run
    from .quantize import Int8Config

    int8 = Int8Config(target=a.int8, calibration_images=a.int8_calibration_images) if a.int8 else None
    manifest = export_run(a.run, a.out, metrics_path=a.metrics, name=a.name, opset=a.opset,
                          allow_uncalibrated=a.allow_uncalibrated, bank_fp16=a.bank_fp16, int8=int8)
    print(f"exported {a.out}/model.onnx ({manifest['precision']}, sha256 {manifest['onnx']['sha256']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etstpm", description="ET-STPM anomaly detection toolkit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for torch (default: torch's choice, one per core); on a machine shared "
                             "with other jobs, 1 avoids OpenMP threads waiting on each other")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_calibrate(sub)
    _add_export(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if args.verbose else logging.WARNING)  # progress goes through tqdm instead
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(console)
    try:
        return int(args.func(args) or 0)
    except EtstpmError as e:
        print(f"etstpm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"etstpm {args.command}: interrupted (continue a training with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
