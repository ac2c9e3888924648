"""The layout registry, the ``model`` alias, and the pyramid's ``downsample`` option (merge2)."""

from __future__ import annotations

import json
from typing import get_args

import pytest
import torch

from mixerlab.config import SKELETON, ModelConfig, parse
from mixerlab.errors import ConfigError
from mixerlab.models import (
    DOWNSAMPLES,
    LAYOUTS,
    IsotropicNet,
    PyramidNet,
    canonical,
    create_model,
    get_layout,
    list_layouts,
    relevant_factors,
)
from mixerlab.models.pyramid import PatchMerge, stage_sides
from mixerlab.spec import GRID_FACTORS, MODEL_FACTORS


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_layout_the_config_allows_is_registered_and_builds():
    assert tuple(LAYOUTS) == get_args(ModelConfig.model_fields["layout"].annotation)
    assert list_layouts() == ["isotropic", "pyramid"]
    assert get_layout("isotropic") is IsotropicNet and get_layout("pyramid") is PyramidNet
    for name in list_layouts():
        assert isinstance(create_model(ModelConfig(layout=name, width=8, depth=3)), LAYOUTS[name])
    with pytest.raises(ConfigError, match="layout: unknown 'ring'; choose one of isotropic, pyramid"):
        get_layout("ring")


def test_skeleton_is_an_alias_stored_as_isotropic():
    """Committed specs and records say `model: isotropic`; `skeleton` names the same model."""
    cfg = parse(ModelConfig, {"model": "skeleton", "layout": "pyramid"})
    assert cfg.model == SKELETON == "isotropic" and cfg.is_skeleton and cfg == ModelConfig(layout="pyramid")
    assert not ModelConfig(model="resnet18").is_skeleton and ModelConfig(model="resnet18").label == "resnet18"
    torch.manual_seed(0)
    a = create_model(cfg)
    torch.manual_seed(0)
    b = create_model(ModelConfig(model="isotropic", layout="pyramid"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_downsample_is_a_grid_factor_relevant_only_in_the_pyramid():
    assert "downsample" in MODEL_FACTORS and "downsample" in GRID_FACTORS  # derived from ModelConfig
    assert tuple(DOWNSAMPLES) == get_args(ModelConfig.model_fields["downsample"].annotation)
    assert "downsample" in relevant_factors(ModelConfig(layout="pyramid"))
    assert "downsample" not in relevant_factors(ModelConfig())
    # In the isotropic layout it changes nothing, so a sweep collapses its levels into one trial.
    assert canonical(ModelConfig(downsample="merge2")) == canonical(ModelConfig())
    assert canonical(ModelConfig(layout="pyramid", downsample="merge2")) != canonical(ModelConfig(layout="pyramid"))


@pytest.mark.parametrize("size,sides", [(28, [14, 7, 4]), (32, [16, 8, 4])])
@pytest.mark.parametrize("mixer", ["conv", "attention", "mlp"])
def test_merge2_forward_shapes_match_the_stage_plan(size, sides, mixer):
    cfg = ModelConfig(mixer=mixer, layout="pyramid", downsample="merge2", image_size=size,
                      patch_size=2, depth=3, width=8, in_chans=1)
    model = create_model(cfg).eval()
    assert [int(r["grid"].split("x")[0]) for r in model.stage_plan()] == sides == stage_sides(size // 2)
    x = torch.randn(2, 1, size, size)
    with torch.no_grad():
        h = model.stem(x)
        for stage, side, width in zip(model.stages, sides, (8, 16, 32)):
            h = stage(h)
            assert h.shape == (2, width, side, side)
        assert model(x).shape == (2, 10)
    assert isinstance(model.stages[1].downsample, PatchMerge)


def test_merge2_pads_an_odd_side_at_the_bottom_right_only():
    merge = PatchMerge(1, 1, "layer")
    with torch.no_grad():
        merge.conv.weight.fill_(1.0)
        merge.conv.bias.zero_()
    merge.norm = torch.nn.Identity()  # look at the windows alone
    x = torch.arange(49.0).reshape(1, 1, 7, 7)
    y = merge(x)
    assert y.shape == (1, 1, 4, 4)
    assert y[0, 0, 0, 0] == 0 + 1 + 7 + 8  # top-left window: no padding
    assert y[0, 0, 3, 3] == 48  # bottom-right window: one real pixel, three zeros
    assert y[0, 0, 0, 3] == 6 + 13  # right column: two real pixels


def test_merge2_has_fewer_parameters_than_conv3_and_nothing_else_changes():
    base = dict(layout="pyramid", width=8, depth=3)
    conv3 = create_model(ModelConfig(**base))
    merge2 = create_model(ModelConfig(**base, downsample="merge2"))
    # Two down-samplings, 8 -> 16 and 16 -> 32 channels: 9 vs 4 weights per in/out pair.
    assert _params(conv3) - _params(merge2) == (9 - 4) * (8 * 16 + 16 * 32)
    keys = lambda m: {k: v.shape for k, v in m.state_dict().items() if ".downsample." not in k}  # noqa: E731
    assert keys(conv3) == keys(merge2)


def test_a_bad_downsample_is_one_clear_config_error(run_cli):
    with pytest.raises(ConfigError, match=r"'downsample': Input should be 'conv3' or 'merge2' \(got 'merge3'\)"):
        parse(ModelConfig, {"layout": "pyramid", "downsample": "merge3"}, "model")
    code, out, _ = run_cli("describe", "--layout", "pyramid", "--downsample", "merge2", "--json")
    rec = json.loads(out)
    assert code == 0 and rec["downsample"] == "merge2"
    assert [s["grid"] for s in rec["stages"]] == ["14x14", "7x7", "4x4"]
