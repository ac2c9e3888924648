"""Stratified, seeded index selection: the validation split and training subsets.

Stratified so that a small validation set or subset has the class mix of the whole
(a random 10% of a 600-image subset can miss a class's share by a third). Counts are
exact: ``pick(y, n, g)`` returns exactly ``n`` indices, shared out by largest remainder.
"""

from __future__ import annotations

import torch


def allocate(counts: torch.Tensor, total: int) -> torch.Tensor:
    """Share ``total`` among classes in proportion to ``counts``, summing to ``total`` exactly.

    Largest-remainder (Hamilton) apportionment; ties go to the lower class index. No class
    gets more than it has, since its quota never exceeds its count.
    """
    quota = counts.double() * total / counts.sum().clamp_min(1)  # (K,)
    take = quota.floor().long()
    short = total - int(take.sum())
    order = torch.argsort(take - quota, stable=True)  # largest remainder first
    take[order[:short]] += 1
    return take


def pick(y: torch.Tensor, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (picked, rest) of ``y``: ``n`` picked at random, stratified by class; sorted."""
    classes, inverse, counts = torch.unique(y, return_inverse=True, return_counts=True)
    picked, rest = [], [torch.empty(0, dtype=torch.long)]
    # One loop step per class (at most a few hundred), never per sample.
    for c, k in enumerate(allocate(counts, n).tolist()):
        idx = torch.nonzero(inverse == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        picked.append(idx[:k])
        rest.append(idx[k:])
    picked = torch.cat(picked) if picked else torch.empty(0, dtype=torch.long)
    return picked.sort().values, torch.cat(rest).sort().values


def split_indices(y: torch.Tensor, val_fraction: float, train_subset: int | None,
                  seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) into a training set with labels ``y``.

    The validation split is drawn first from the seed alone, so it is the same whatever
    ``train_subset`` is: runs on different subset sizes are validated on the same images.
    Raises ``ValueError`` if ``train_subset`` is larger than what remains for training.
    """
    g = torch.Generator().manual_seed(seed)
    n_val = int(val_fraction * len(y) + 0.5)
    val, train = pick(y, n_val, g)
    if train_subset is not None:
        if train_subset > len(train):
            raise ValueError(f"train_subset {train_subset} > {len(train)} training images")
        sub, _ = pick(y[train], train_subset, g)
        train = train[sub]
    return train, val
