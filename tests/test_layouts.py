"""Layouts (isotropic, pyramid), stems (patch, conv) and channel_mlp_ratio, with real torch.

Hand counts below follow mixerlab.measure's conventions: MACs of convs and matmuls only
(conv MACs = output elements x in_ch/groups x k x k); norms, GELU, pooling and residual
adds are not counted. BatchNorm has 2 parameters per channel.
"""

import json

import pytest
import torch

from mixerlab.config import ModelConfig, parse
from mixerlab.errors import ConfigError
from mixerlab.measure import count_flops, count_params
from mixerlab.models import canonical, create_model, list_mixers, relevant_factors
from mixerlab.models.pyramid import stage_depths

# conv mixer, 3x3 kernel, patch 4, depth 3, width 8, 28 px, 1 channel, 10 classes, mlp_ratio 2.
SMALL = dict(mixer="conv", kernel_size=3, patch_size=4, depth=3, width=8, mlp_ratio=2.0,
             image_size=28, in_chans=1, num_classes=10)


def _counts(cfg: ModelConfig) -> tuple[int, int]:
    model = create_model(cfg)
    return count_params(model)["params"], count_flops(model, (cfg.in_chans, 28, 28))["macs"]


def test_isotropic_hand_count():
    # Grid 28/4 = 7x7, N = 49 tokens, C = 8, channel MLP hidden 16.
    # params: stem conv 1*16*8 + 8 = 136, BN 16                               ->   152
    #   block: BN 16 + dw conv 8*9 + 8 = 80 + BN 16 + fc1 8*16+16 = 144
    #          + fc2 16*8+8 = 136                                    = 392, x3 -> 1,176
    #   final BN 16, head 8*10 + 10 = 90                                      ->   106
    #   total 152 + 1,176 + 106 = 1,434
    # MACs: stem 49*8*16 = 6,272
    #   block: dw 49*8*9 = 3,528 + fc1 49*16*8 = 6,272 + fc2 6,272 = 16,072, x3 = 48,216
    #   head 8*10 = 80;  total 6,272 + 48,216 + 80 = 54,568
    assert _counts(ModelConfig(**SMALL)) == (1_434, 54_568)


def test_pyramid_hand_count():
    # depth 3 -> [1, 1, 1]; widths 8, 16, 32; grids 7x7, 4x4, 2x2 (ceil halving).
    # params: stem 152 (as isotropic); stage 1 block (C=8) 392
    #   downsample 1: BN(8) 16 + conv 3x3 8->16: 8*16*9 + 16 = 1,168            -> 1,184
    #   stage 2 block (C=16, hidden 32): 32 + 16*9+16=160 + 32 + 16*32+32=544
    #            + 32*16+16=528                                                 -> 1,296
    #   downsample 2: BN(16) 32 + conv 16->32: 16*32*9 + 32 = 4,640             -> 4,672
    #   stage 3 block (C=32, hidden 64): 64 + 320 + 64 + 2,112 + 2,080          -> 4,640
    #   final BN(32) 64, head 32*10 + 10 = 330
    #   total 152 + 392 + 1,184 + 1,296 + 4,672 + 4,640 + 64 + 330 = 12,730
    # MACs: stem 6,272; stage 1 block 16,072 (as isotropic)
    #   downsample 1: out 4*4*16 = 256 elements x 8*9 = 18,432
    #   stage 2 block (N=16): dw 16*16*9 = 2,304 + fc1 16*32*16 = 8,192 + fc2 8,192 = 18,688
    #   downsample 2: out 2*2*32 = 128 x 16*9 = 18,432
    #   stage 3 block (N=4): dw 4*32*9 = 1,152 + fc1 4*64*32 = 8,192 + fc2 8,192 = 17,536
    #   head 32*10 = 320
    #   total 6,272 + 16,072 + 18,432 + 18,688 + 18,432 + 17,536 + 320 = 95,752
    assert _counts(ModelConfig(**SMALL, layout="pyramid")) == (12_730, 95_752)


def test_conv_stem_hand_count():
    # p=4: two 3x3 stride-2 convs, channels 1 -> 4 -> 8, grids 14x14 then 7x7.
    # params: 1*4*9 + 4 = 40, BN 8; 4*8*9 + 8 = 296, BN 16 -> 360 (patch stem: 152)
    # MACs: 14*14*4 * 1*9 = 7,056 + 7*7*8 * 4*9 = 14,112 -> 21,168 (patch stem: 6,272)
    assert _counts(ModelConfig(**SMALL, stem="conv")) == (1_434 - 152 + 360, 54_568 - 6_272 + 21_168)


@pytest.mark.parametrize("depth,expected", [(3, [1, 1, 1]), (4, [1, 1, 2]), (5, [1, 2, 2]),
                                            (6, [2, 2, 2]), (8, [2, 3, 3])])
def test_stage_depths_remainder_to_last_stages(depth, expected):
    assert stage_depths(depth) == expected
    model = create_model(ModelConfig(layout="pyramid", depth=depth, width=8))
    assert [s["depth"] for s in model.stage_plan()] == expected


@pytest.mark.parametrize("image_size,grids", [(28, ["14x14", "7x7", "4x4"]), (32, ["16x16", "8x8", "4x4"])])
def test_pyramid_stage_plan(image_size, grids):
    cfg = ModelConfig(layout="pyramid", image_size=image_size, width=8, depth=6)
    model = create_model(cfg)
    plan = model.stage_plan()
    assert [s["grid"] for s in plan] == grids
    assert [s["width"] for s in plan] == [8, 16, 32]
    feats = model.forward_features(torch.randn(2, 1, image_size, image_size))
    side = int(grids[-1].split("x")[0])
    assert feats.shape == (2, 32, side, side)  # the plan is what the model really does
    assert model.num_features == 32
    assert model.forward_head(feats, pre_logits=True).shape == (2, 32)
    model.reset_classifier(3)
    assert model(torch.randn(2, 1, image_size, image_size)).shape == (2, 3)


def _synthetic_step(model: torch.nn.Module, cfg: ModelConfig) -> float:
    """One training step on a synthetic batch: forward, backward, AdamW step."""
    x = torch.randn(4, cfg.in_chans, cfg.image_size, cfg.image_size)  # synthetic images
    y = torch.randint(0, cfg.num_classes, (4,))  # synthetic labels
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    after = [p for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
    return loss.item()


@pytest.mark.parametrize("mixer", list_mixers())
@pytest.mark.parametrize("layout,stem", [("pyramid", "patch"), ("pyramid", "conv"), ("isotropic", "conv")])
def test_every_mixer_trains_in_every_layout_and_stem(mixer, layout, stem):
    cfg = ModelConfig(mixer=mixer, layout=layout, stem=stem, width=8, depth=3, heads=2,
                      kernel_size=3, patch_size=4)
    model = create_model(cfg).train()
    assert torch.isfinite(torch.tensor(_synthetic_step(model, cfg)))
    assert count_flops(model, (1, 28, 28))["macs"] > 0


def test_attention_gets_one_position_embedding_per_stage():
    model = create_model(ModelConfig(mixer="attention", layout="pyramid", width=8, heads=2, depth=3))
    shapes = [tuple(s.pos_embed.shape) for s in model.stages]
    assert shapes == [(1, 8, 14, 14), (1, 16, 7, 7), (1, 32, 4, 4)]
    conv = create_model(ModelConfig(mixer="conv", layout="pyramid", width=8, depth=3))
    assert all(s.pos_embed is None for s in conv.stages)


@pytest.mark.parametrize("image_size", [28, 32])
@pytest.mark.parametrize("patch_size", [1, 2, 4])
def test_conv_stem_grid_equals_patch_stem_grid(image_size, patch_size):
    x = torch.randn(2, 3, image_size, image_size)
    shapes = []
    for stem in ("patch", "conv"):
        cfg = ModelConfig(stem=stem, patch_size=patch_size, image_size=image_size, in_chans=3,
                          width=16, depth=1)
        model = create_model(cfg)
        shapes.append(tuple(model.patch_embed(x).shape))
        side = image_size // patch_size
        assert model.stage_plan()[0]["grid"] == f"{side}x{side}"
    assert shapes[0] == shapes[1] == (2, 16, image_size // patch_size, image_size // patch_size)


@pytest.mark.parametrize("fields,message", [
    (dict(stem="conv", patch_size=7),
     "stem: 'conv' needs a power-of-two patch_size (got 7); use patch_size 1, 2 or 4, or stem 'patch'"),
    (dict(layout="pyramid", depth=2), "depth: the pyramid layout needs at least one block per stage"),
    (dict(layout="pyramid", patch_size=14), "patch_size: 14 gives a 2x2 grid, too small for layout 'pyramid'"),
    (dict(layout="pyramid", patch_size=14), "(largest 7)"),
    (dict(layout="pyramid", stem="conv", patch_size=16, image_size=32), "(largest 8)"),
])
def test_layout_and_stem_errors_name_the_key(fields, message):
    with pytest.raises(ConfigError) as err:
        create_model(ModelConfig(**fields))
    assert message in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_unknown_layout_is_one_line():
    with pytest.raises(ConfigError) as err:
        parse(ModelConfig, {"layout": "tower"}, "model options")
    assert "'layout'" in str(err.value) and "'pyramid'" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_channel_mlp_ratio_changes_only_the_channel_mlp():
    base = create_model(ModelConfig(mixer="mlp", width=8, depth=1, mlp_ratio=2.0))
    wide = create_model(ModelConfig(mixer="mlp", width=8, depth=1, mlp_ratio=2.0, channel_mlp_ratio=3.0))
    assert base.blocks[0].mlp.fc1.out_channels == 16 and wide.blocks[0].mlp.fc1.out_channels == 24
    # the token MLP (196 tokens, hidden 2 x 196) keeps mlp_ratio
    assert base.blocks[0].mixer.fc1.weight.shape == wide.blocks[0].mixer.fc1.weight.shape == (392, 196)
    pyr = create_model(ModelConfig(mixer="mlp", layout="pyramid", width=8, depth=3, channel_mlp_ratio=3.0))
    assert [s.blocks[0].mlp.fc1.out_channels for s in pyr.stages] == [24, 48, 96]
    assert [s.blocks[0].mixer.fc1.out_features for s in pyr.stages] == [392, 98, 32]


def test_new_factors_are_relevant_and_survive_canonical():
    cfg = ModelConfig(layout="pyramid", stem="conv", channel_mlp_ratio=3.0)
    assert {"layout", "stem", "channel_mlp_ratio"} <= set(relevant_factors(cfg))
    assert canonical(cfg) == cfg
    assert "channel_mlp_ratio" not in relevant_factors(ModelConfig())
    assert canonical(ModelConfig(channel_mlp_ratio=3.0)) != canonical(ModelConfig())
    assert canonical(ModelConfig(layout="pyramid")) != canonical(ModelConfig())
    # a reference architecture ignores all three
    ref = ModelConfig(model="resnet18", layout="pyramid", stem="conv", channel_mlp_ratio=3.0)
    assert canonical(ref) == canonical(ModelConfig(model="resnet18"))


def test_describe_prints_the_stage_plan(run_cli):
    code, out, _ = run_cli("describe", "--mixer", "conv", "--layout", "pyramid", "--patch-size", "2")
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == ["stage", "grid", "tokens", "width", "depth"])
    assert [line.split() for line in lines[header + 1:header + 4]] == [
        ["1", "14x14", "196", "64", "2"], ["2", "7x7", "49", "128", "2"], ["3", "4x4", "16", "256", "2"]]
    # The text form names the variant and its layout, never a bare "model isotropic" above
    # "layout pyramid", and says whose grid the tokens are.
    rows = [line.split() for line in lines]
    assert rows[0] == ["variant", "conv"] and ["layout", "pyramid"] in rows
    assert not any(row[:1] == ["model"] for row in rows)
    assert ["stem", "grid", "14x14"] in [line.split() for line in lines]
    code, out, _ = run_cli("describe", "--mixer", "attention", "--layout", "pyramid", "--stem", "conv",
                           "--image-size", "32", "--json")
    rec = json.loads(out)
    assert code == 0 and rec["layout"] == "pyramid" and rec["stem"] == "conv"
    assert rec["grid"] == "16x16" and rec["tokens"] == 256
    assert [(s["grid"], s["width"]) for s in rec["stages"]] == [("16x16", 64), ("8x8", 128), ("4x4", 256)]


def test_describe_isotropic_has_one_stage(run_cli):
    code, out, _ = run_cli("describe", "--json", "--channel-mlp-ratio", "3")
    rec = json.loads(out)
    assert code == 0 and rec["channel_mlp_ratio"] == 3.0
    assert rec["stages"] == [{"stage": 1, "grid": "14x14", "tokens": 196, "width": 64, "depth": 6}]


def test_describe_layout_error_is_one_line(run_cli):
    code, _, err = run_cli("describe", "--layout", "pyramid", "--patch-size", "14")
    assert code == 2 and "patch_size: 14" in err and len(err.strip().splitlines()) == 1
