"""Precise BatchNorm statistics: recomputed from many training images before an evaluation.

A BatchNorm layer keeps running averages of its batch statistics with momentum 0.1, so the
statistics an evaluation normalises with come mostly from the last ten or so training
batches. Where those batches' statistics vary widely, the evaluation measures that draw, not
the weights: the identity control of study 10 (results/budget_long) swung between 28% and 84%
validation accuracy from one epoch to the next at an lr below 1e-3, while its training
accuracy (batch statistics) rose smoothly from 82 to 84%. Recomputing the statistics as an
equal-weight average over a fixed number of training images, the weights frozen, removes that
draw ("precise BN": Wu & Johnson, "Rethinking 'Batch' in BatchNorm", arXiv:2105.07576, Sec. 3).

Each evaluation (validation after every epoch, so the late gain, and the final test) reads
the recomputed statistics; training is untouched, since a training step normalises with its
own batch's statistics.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

# mmpretrain's setting for its ImageNet ResNet-50 with precise BN (num_items=8192,
# configs/resnet/resnet50_b32x8_coslr_preciseBn_imagenet.py): 64 batches of 128 here, about
# 5% of an epoch's compute on Fashion-MNIST's 54,000 training images (one forward pass each).
DEFAULT_IMAGES = 8192


def bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers that keep running statistics."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: Iterable, amp) -> int:
    """Replace every BatchNorm layer's running mean and variance by their equal-weight average
    over ``batches`` (``(inputs, targets)`` pairs; the weights are not touched) and return the
    number of images used: 0 where the model has no BatchNorm layer or ``batches`` is empty,
    and then the model is as it was. ``amp``: the autocast context training used."""
    layers = bn_layers(model)
    if not layers:
        return 0
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in layers]
    momenta = [m.momentum for m in layers]
    was_training = model.training
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: every batch counts the same
    model.train()
    n = 0
    try:
        for x, _ in batches:
            with amp:
                model(x)
            n += len(x)
    finally:
        for m, mom, state in zip(layers, momenta, saved):
            m.momentum = mom
            if n == 0:
                m.load_state_dict(state)
        model.train(was_training)
    return n
