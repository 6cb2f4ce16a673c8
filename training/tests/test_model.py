"""Loss and anomaly map follow the paper's formulas (checked against direct per-position computations)."""
from __future__ import annotations

import pytest
import torch

from etstpm.backbone import FeatureExtractor
from etstpm.methods.stpm.anomaly_map import AnomalyMapGenerator
from etstpm.methods.stpm.loss import STPMLoss
from etstpm.methods.stpm.model import ETSTPM


def _feats(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, s, s, generator=g) for c, s in ((64, 8), (128, 4), (256, 2))]


def test_loss_is_sum_of_mean_half_squared_normalized_distance() -> None:
    t, s = _feats(0), _feats(1)
    want = 0.0
    for tl, sl in zip(t, s):
        n, c, h, w = tl.shape
        per_pos = []
        for i in range(n):
            for y in range(h):
                for x in range(w):
                    a, b = tl[i, :, y, x], sl[i, :, y, x]
                    per_pos.append(0.5 * float(((a / a.norm() - b / b.norm()) ** 2).sum()))
        want += sum(per_pos) / len(per_pos)
    got = float(STPMLoss()(t, s))
    assert abs(got - want) < 1e-5 * max(1.0, want)


def test_anomaly_map_is_product_of_upsampled_one_minus_cosine() -> None:
    t, s = _feats(2), _feats(3)
    gen = AnomalyMapGenerator()
    levels = gen.level_maps(t, s, (16, 16))
    amap = gen(t, s, (16, 16))
    assert [m.shape for m in levels] == [(2, 1, 16, 16)] * 3 and amap.shape == (2, 1, 16, 16)
    # level 3 at position (0,0) before upsampling: 1 - cos computed by hand
    a, b = t[2][0, :, 0, 0], s[2][0, :, 0, 0]
    cos = float(a @ b / (a.norm() * b.norm()))
    raw3 = 1 - torch.nn.functional.cosine_similarity(t[2], s[2], dim=1)
    assert abs(float(raw3[0, 0, 0]) - (1 - cos)) < 1e-5
    up3 = torch.nn.functional.interpolate(raw3[:, None], size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(levels[2], up3)
    assert torch.allclose(amap, levels[0] * levels[1] * levels[2])
    # 1 - cos = 0.5 * ||norm(t) - norm(s)||^2: the map measures what the loss trains
    d = torch.nn.functional.normalize(t[0], dim=1) - torch.nn.functional.normalize(s[0], dim=1)
    assert torch.allclose(1 - torch.nn.functional.cosine_similarity(t[0], s[0], dim=1), 0.5 * d.pow(2).sum(1),
                          atol=1e-5)


def test_model_outputs_and_frozen_teacher() -> None:
    torch.manual_seed(0)
    model = ETSTPM(FeatureExtractor(), FeatureExtractor())
    model.train()
    assert not model.teacher.training and model.student.training  # teacher stays in eval mode
    assert all(not p.requires_grad for p in model.teacher.parameters())
    model.eval()
    x = torch.randn(3, 3, 64, 48)
    amap, score = model(x)
    assert amap.shape == (3, 1, 64, 48) and score.shape == (3,)
    assert torch.allclose(score, amap.flatten(1).max(1).values)
    levels = model.level_maps(x)
    assert torch.allclose(amap, levels[0] * levels[1] * levels[2])
    # same weights in teacher and student -> zero anomaly everywhere
    same = ETSTPM(model.teacher, model.teacher).eval()
    assert float(same(x)[0].abs().max()) < 1e-5


def test_weight_average_is_the_bias_corrected_ema_of_every_step() -> None:
    from torch import nn

    from etstpm.ema import WeightAverage

    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    avg = WeightAverage(net, half_life_steps=1.0)  # decay 0.5
    seen = []
    for v in (1.0, 3.0, 5.0):
        with torch.no_grad():
            net[0].weight.fill_(v)
            net[1].running_mean.fill_(v)
        net[1].num_batches_tracked.fill_(int(v))
        avg.update(net)
        seen.append(v)
    state = avg.averaged(net)
    want = (0.25 * 1 + 0.5 * 3 + 1.0 * 5) / (0.25 + 0.5 + 1.0)  # weights decay^(t-i), normalised
    assert torch.allclose(state["0.weight"], torch.full((2, 2), want))
    assert torch.allclose(state["1.running_mean"], torch.full((2,), want))
    assert int(state["1.num_batches_tracked"]) == 5  # integers are taken as they are
    again = WeightAverage(net, half_life_steps=1.0)
    again.load_state_dict(avg.state_dict())
    assert torch.equal(again.averaged(net)["0.weight"], state["0.weight"])
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(net, half_life_steps=2.0).load_state_dict(avg.state_dict())
