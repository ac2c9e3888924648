"""Every registered mixer and reference architecture builds, runs and rejects bad configs."""

import pytest
import torch

from mixerlab.config import ModelConfig
from mixerlab.errors import ConfigError
from mixerlab.measure import count_params
from mixerlab.models import canonical, create_model, list_mixers, relevant_factors
from mixerlab.models.reference import create_reference, list_references


@pytest.mark.parametrize("mixer", list_mixers())
@pytest.mark.parametrize("image_size,patch_size,in_chans", [(28, 1, 1), (28, 4, 1), (28, 7, 1), (32, 2, 3), (32, 8, 3)])
def test_mixer_forward_backward(mixer, image_size, patch_size, in_chans):
    cfg = ModelConfig(mixer=mixer, image_size=image_size, patch_size=patch_size, in_chans=in_chans,
                      width=16, depth=2, heads=2, num_classes=7, kernel_size=3)
    model = create_model(cfg)
    x = torch.randn(4, in_chans, image_size, image_size)
    y = model(x)
    assert y.shape == (4, 7)
    assert torch.isfinite(y).all()
    y.logsumexp(-1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # the timm model interface every tool relies on
    assert model.num_features == 16
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (4, 16)
    model.reset_classifier(3)
    assert model(x).shape == (4, 3)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_norms(norm):
    model = create_model(ModelConfig(norm=norm, depth=1, width=8))
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_position_embeddings_only_for_attention():
    for mixer in list_mixers():
        model = create_model(ModelConfig(mixer=mixer, depth=1, width=8, heads=2))
        assert (model.pos_embed is not None) == (mixer == "attention"), mixer


@pytest.mark.parametrize("patch_size", [4, 2])
def test_attention_plain_and_fused_kernels_agree(patch_size):
    from mixerlab.models.mixers.attention import Attention

    torch.manual_seed(0)
    model = create_model(ModelConfig(mixer="attention", patch_size=patch_size, depth=2, width=32))
    layers = [m for m in model.modules() if isinstance(m, Attention)]
    assert {m.kernel for m in layers} == {"fused"}  # the default
    x = torch.randn(3, 1, 28, 28)
    outs, grads = {}, {}
    for kernel in ("plain", "fused"):
        for m in layers:
            m.kernel = kernel
        model.zero_grad()
        outs[kernel] = model(x)
        outs[kernel].square().sum().backward()
        grads[kernel] = layers[0].qkv.weight.grad.clone()
    torch.testing.assert_close(outs["plain"], outs["fused"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads["plain"], grads["fused"], rtol=1e-4, atol=1e-5)


def test_random_mixer_is_frozen_and_seeded():
    torch.manual_seed(0)
    a = create_model(ModelConfig(mixer="random", depth=1, width=8))
    torch.manual_seed(0)
    b = create_model(ModelConfig(mixer="random", depth=1, width=8))
    counts = count_params(a)
    n = 14 * 14
    assert counts["params"] - counts["trainable_params"] == n * n
    assert torch.equal(a.blocks[0].mixer.matrix, b.blocks[0].mixer.matrix)


# Published parameter counts (Trockman & Kolter 2022, Table 1; the CIFAR-10 model of
# github.com/locuslab/convmixer-cifar10).
@pytest.mark.parametrize("name,image_size,num_classes,expected", [
    ("convmixer_1536_20", 224, 1000, 51_625_960),
    ("convmixer_768_32", 224, 1000, 21_110_248),
    ("convmixer_1024_20_ks9_p14", 224, 1000, 24_383_464),
    ("convmixer_256_8_ks5_p2", 32, 10, 594_186),
])
def test_published_parameter_counts(name, image_size, num_classes, expected):
    model = create_reference(name, image_size, 3, num_classes)
    assert count_params(model)["params"] == expected


@pytest.mark.parametrize("name", list_references())
def test_reference_architectures_adapt_to_data(name):
    model = create_model(ModelConfig(model=name, image_size=28, in_chans=1, num_classes=10))
    model.eval()
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("fields,message", [
    (dict(patch_size=3), "patch_size: 3 does not divide image_size 28; allowed patch sizes: [1, 2, 4, 7, 14, 28]"),
    (dict(mixer="attention", heads=3), "heads: 3 does not divide width 64"),
    (dict(depth=0), "depth: must be a positive integer"),
    (dict(width=-4), "width: must be a positive integer"),
    (dict(mixer="transformer"), "mixer: unknown 'transformer'; choose one of attention, conv, identity, mlp, pool, random"),
    (dict(kernel_size=4), "kernel_size: must be a positive odd integer"),
    (dict(model="no_such_net"), "model: unknown 'no_such_net'"),
    (dict(image_size=0), "image_size: must be a positive integer"),
])
def test_invalid_configs_name_the_field(fields, message):
    with pytest.raises(ConfigError) as err:
        create_model(ModelConfig(**fields))
    assert message in str(err.value)


def test_unknown_config_key_is_rejected():
    from mixerlab.config import parse

    with pytest.raises(ConfigError, match="unknown key 'widht'"):
        parse(ModelConfig, {"widht": 3})


def test_irrelevant_factors_collapse():
    a = ModelConfig(mixer="attention", kernel_size=3)
    b = ModelConfig(mixer="attention", kernel_size=9)
    assert "kernel_size" not in relevant_factors(a)
    assert canonical(a) == canonical(b)
    assert canonical(ModelConfig(kernel_size=3)) != canonical(ModelConfig(kernel_size=9))


@pytest.mark.parametrize("shape,std", [((64, 64), 0.02), ((10, 3, 5, 5), 0.02), ((7,), 1.0)])
def test_trunc_normal_is_timms_bit_for_bit(shape, std):
    """mixerlab's init is timm's draw for draw (PyTorch 2.14's own trunc_normal_ is not), so
    every committed trial keeps its initial weights."""
    from timm.layers import trunc_normal_ as timms

    from mixerlab.models.init import trunc_normal_

    torch.manual_seed(3)
    want = timms(torch.empty(shape), std=std)
    torch.manual_seed(3)
    assert torch.equal(trunc_normal_(torch.empty(shape), std=std), want)
    torch.manual_seed(3)
    assert not torch.equal(torch.nn.init.trunc_normal_(torch.empty(shape), std=std), want)


def test_layernorm2d_is_timms():
    from timm.layers import LayerNorm2d as Timms

    from mixerlab.models.layers import LayerNorm2d

    ours, theirs = LayerNorm2d(6), Timms(6)
    with torch.no_grad():
        for p in (*ours.parameters(), *theirs.parameters()):
            p.copy_(torch.linspace(-1, 1, 6))
    x = torch.randn(2, 6, 5, 5)
    assert ours.eps == theirs.eps == 1e-6
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert torch.equal(ours(x), theirs(x))


def test_a_trial_of_the_skeleton_never_imports_timm():
    """timm and torchvision (torch._dynamo with them) cost every trial worker about 2.5 s; a
    trial of mixerlab's own models on Fashion-MNIST must load neither (a reference
    architecture still loads timm, a download torchvision)."""
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "import mixerlab.sweep.trainable, mixerlab.train\n"
            "from mixerlab.config import ModelConfig\n"
            "from mixerlab.models import create_model\n"
            "for mixer in ('conv', 'attention', 'mlp'):\n"
            "    create_model(ModelConfig(mixer=mixer, width=16, depth=1, norm='layer'))(torch.randn(2, 1, 28, 28))\n"
            "from mixerlab.config import DataConfig\n"
            "from mixerlab.data import load_dataset\n"
            "load_dataset(DataConfig(name='fashion-mnist', train_subset=256))\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('timm', 'torchvision'))\n"
            "assert not bad, bad[:5]\n"
            "create_model(ModelConfig(model='vit_64_6_h4_p4'))\n"
            "assert 'timm' in sys.modules\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
