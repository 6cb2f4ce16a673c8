"""bench/training/variants.py: the measured alternatives must compute what they claim, or the bench says nothing."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from conftest import REPO
from etstpm import data
from etstpm.evaluate import predict
from etstpm.run import load_run

_spec = importlib.util.spec_from_file_location("variants", REPO / "bench" / "training" / "variants.py")
variants = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(variants)


def test_letterbox_keeps_aspect_ratio_and_mirrors_into_the_padding(tmp_path: Path) -> None:
    rgb = np.zeros((20, 80, 3), dtype=np.uint8)  # 4:1; red ramps left to right, green top to bottom
    rgb[..., 0] = np.linspace(0, 255, 80, dtype=np.uint8)[None, :]
    rgb[..., 1] = (np.arange(20, dtype=np.uint8) * 12)[:, None]
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    out = variants.letterbox(str(tmp_path / "wide.png"), "RGB", 64, Image.NEAREST)
    assert out.shape == (64, 64, 3)
    # 80x20 -> 64x16 in rows 24..39; the 24 rows above and below mirror it (a squash would stretch the green ramp
    # over all 64 rows instead).
    image = np.asarray(Image.fromarray(rgb).resize((64, 16), Image.NEAREST))
    np.testing.assert_array_equal(out[24:40], image)
    np.testing.assert_array_equal(out[8:24], image[::-1])
    np.testing.assert_array_equal(out[40:56], image[::-1])


def test_score_rules_default_is_the_models_score(tiny_run) -> None:
    run_dir, root, category = tiny_run
    model, meta = load_run(run_dir)
    ds = data.AnomalyDataset(root, category, "test", int(meta["image_size"]))
    levels, labels, defects = variants.level_maps(model, ds)
    rules = variants.score_rules(levels)
    reference = predict(model, ds, torch.device("cpu"), show_progress=False)["scores"]
    np.testing.assert_allclose(rules["max"], reference, rtol=1e-5, atol=1e-7)
    # Each level map lies in [0, 2], so the product's maximum is bounded by the product of the levels' maxima.
    bound = rules["max_layer1"] * rules["max_layer2"] * rules["max_layer3"]
    assert np.all(rules["max"] <= bound * (1 + 1e-5))
    table = variants.auroc_table(labels, defects, rules)
    assert set(table) == set(rules)
    assert set(table["max"]["per_defect"]) == set(defects) - {"good"}
    json.dumps(table)  # JSON-ready: the bench writes it as is
