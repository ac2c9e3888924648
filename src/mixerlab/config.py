"""Typed configuration with documented defaults: one place for every knob.

Three small models make up a trial: :class:`ModelConfig` (what is built),
:class:`DataConfig` (what it sees) and :class:`TrainConfig` (how it learns), plus a seed.
Unknown keys are rejected (``extra="forbid"``), so a typo in a spec fails loudly instead
of silently running the default.

Defaults are chosen for the embedded case (Fashion-MNIST, 28 px, a 2-core CPU) and the
comment beside each says why.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mixerlab.errors import ConfigError
from mixerlab.execution import Execution

_STRICT = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

# The value of ``model`` that builds mixerlab's own skeleton, in whichever ``layout``. It is
# spelled "isotropic" because the skeleton had one layout when specs and records began to store
# it; committed specs, records, trial ids and the sweep's matching hold that spelling, so it
# stays the stored value. ``model: skeleton`` is accepted as the clearer name and stored as it.
SKELETON = "isotropic"
MODEL_ALIASES = {"skeleton": SKELETON}


class ModelConfig(BaseModel):
    """The factors of one model.

    ``model="isotropic"`` (alias ``"skeleton"``, see :data:`SKELETON`) builds mixerlab's
    skeleton, in the arrangement ``layout`` names, with the ``mixer`` slot filled; any other
    value names a reference architecture (see ``mixerlab models``) and the skeleton's
    factors are then ignored except ``image_size``, ``in_chans`` and ``num_classes``.
    """

    model_config = _STRICT

    # 'isotropic' (the skeleton; 'skeleton' is an alias) or a registered timm reference, e.g.
    # convmixer_256_8_ks5_p2, vit_64_6_h4_p4 (mixerlab/models/reference.py).
    model: str = SKELETON
    # The skeleton's token mixer (a registry: attention, mlp, conv, pool, identity, random,
    # and plugins).
    mixer: str = "conv"
    # 2 px patches at 28 px give a 14x14 token grid: ConvMixer's CIFAR-10 model uses p=2 at
    # 32 px (Trockman & Kolter 2022, Table 2), the best of their small-image settings.
    patch_size: int = 2
    # ConvMixer reports larger kernels help up to k=9 on ImageNet; k=5 is their CIFAR choice.
    kernel_size: int = 5
    # Blocks in the stack.
    depth: int = 6
    # Channels of every token; solved by `match` when capacity is held equal.
    width: int = 64
    # Hidden width of the channel MLP as a multiple of ``width``. 2 keeps small models cheap;
    # ViT/MetaFormer use 4 at ImageNet scale.
    mlp_ratio: float = 2.0
    # The channel MLP's ratio when it must differ from ``mlp_ratio``: the second, fine knob
    # that capacity matching solves after the width (the width moves in steps of ``heads``
    # for attention, too coarse to land within 1%). ``None`` = ``mlp_ratio``.
    channel_mlp_ratio: float | None = Field(None, gt=0)
    # Attention heads (attention mixer only); width is a multiple of it.
    heads: int = 4
    # ConvMixer: BatchNorm beats LayerNorm by 1.44 points on CIFAR-10 (Trockman & Kolter 2022,
    # Sec. 3); MetaFormer uses LayerNorm. A factor a sweep can vary.
    norm: Literal["batch", "layer"] = "batch"
    # ``isotropic``: one resolution through every block (ViT, MLP-Mixer, ConvMixer).
    # ``pyramid``: MetaFormer's hierarchical stages with the same blocks and mixer
    # (Yu et al. 2022, Sec. 4.1); the rule is in mixerlab/models/pyramid.py.
    layout: Literal["isotropic", "pyramid"] = "isotropic"
    # ``patch``: non-overlapping patches (conv, kernel = stride = patch size), as ViT and
    # ConvMixer. ``conv``: overlapping stride-2 3x3 convolutions reaching the same output
    # stride (Xiao et al. 2021, arXiv:2106.14881); patch size must be a power of two.
    stem: Literal["patch", "conv"] = "patch"
    # The pyramid's down-sampling between stages (layout ``pyramid`` only).
    # ``conv3``: MetaFormer's norm + 3x3 stride-2 conv, overlapping windows (Yu et al. 2022).
    # ``merge2``: norm + 2x2 stride-2 conv, non-overlapping: the least mixing a halving can do,
    # as Swin's patch merging (Liu et al. 2021, arXiv:2103.14030, Sec. 3.1: concatenate each
    # 2x2 group of neighbours, then a linear layer; the same map as a 2x2 stride-2 conv).
    # Tells apart what the stages' mixers do from what the down-sampling mixes for them.
    downsample: Literal["conv3", "merge2"] = "conv3"
    # Input side in pixels; set from the data set by the sweep.
    image_size: int = 28
    # Input channels; set from the data set by the sweep.
    in_chans: int = 1
    # Classes of the head; set from the data set by the sweep.
    num_classes: int = 10

    @field_validator("model", mode="before")
    @classmethod
    def _alias(cls, v):
        return MODEL_ALIASES.get(v, v) if isinstance(v, str) else v

    @property
    def is_skeleton(self) -> bool:
        """Whether this builds mixerlab's skeleton (either layout), not a reference architecture."""
        return self.model == SKELETON

    @property
    def label(self) -> str:
        """Short name of the variant: the mixer, or the reference architecture."""
        return self.mixer if self.is_skeleton else self.model


class DataConfig(BaseModel):
    """Which data set, how much of it, and how it is augmented."""

    model_config = _STRICT

    # A registered data set: fashion-mnist, mnist, cifar10, cifar100, imagefolder, synthetic,
    # shards (streamed only), and plugins (`mixerlab train --help` lists them).
    name: str = "fashion-mnist"
    # Where the data set's files are (None: its default places, e.g. Debian's
    # /usr/share/datasets for Fashion-MNIST).
    data_dir: str | None = None
    # Fraction of the training set held out for validation (fixed split seed below). The
    # test set is never used for any choice.
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    # Seed of the validation split and the training subset. With the default, every trial of a
    # study sees the same images, so seeds pair and a difference between arms is never one of
    # data. Also the seed of what must stay fixed whatever the option below says: synthetic
    # data and the test set an image folder without test/ holds out.
    split_seed: int = 0
    # True: each trial draws its validation split and training subset from its own ``seed``
    # (split seed = seed) instead of ``split_seed``, so an interval over seeds includes the
    # sampling of the data as well as the training noise (issue 17 item 7). Seeds still pair
    # across arms: seed s draws the same images in every arm. See :meth:`split_seed_for`.
    split_per_seed: bool = False
    # Stratified subset of the training set (after the validation split), for quick sweeps.
    train_subset: int | None = Field(None, gt=0)
    # ``None`` means the data set's own default (random crop + flip where it makes sense).
    augment: bool | None = None
    # Synthetic data only: number of samples and shape. Never a real result.
    synthetic_size: int = Field(512, gt=0)
    # The side images are resized to (None: the data set's own).
    image_size: int | None = None
    # The streamed path (data/stream.py): images decoded per batch by DataLoader workers
    # instead of held whole in memory, for data sets that do not fit (ImageNet-1k at 224 px
    # is ~190 GB as uint8). None: chosen by size (streamed when the decoded set would exceed
    # ``memory_budget_gb``, with a notice); True/False force it. Sources without a streamed
    # reader always load in memory.
    stream: bool | None = None
    # GB of decoded uint8 images the in-memory path may hold. 16: a quarter of a 64 GB node,
    # leaving the rest for Ray's object store (which holds a second copy) and the trials.
    memory_budget_gb: float = Field(16.0, gt=0)
    # Decoding processes of the streamed path; they count in the trial's CPUs (None: cpus - 1,
    # the rule in data/workers.py: loader_workers). Results do not depend on it.
    workers: int | None = Field(None, ge=0)
    # Streamed path only: timm's RandAugment policy (e.g. "rand-m9-mstd0.5-inc1", ConvMixer's
    # ImageNet recipe, Trockman & Kolter 2022 Sec. 3) and random-erasing probability
    # (Zhong et al. 2020; ConvMixer uses 0.25).
    randaugment: str | None = None
    # Streamed path only: the probability of random erasing (see above).
    random_erasing: float = Field(0.0, ge=0, le=1)
    # Streamed path only: the evaluation resize keeps this fraction of the image, as timm's
    # ``crop_pct`` (resize to side / crop_pct, then centre-crop side). None: timm's 0.875 (the
    # ImageNet convention, resize 256 for a 224 crop). 1.0 keeps the whole image, as the
    # in-memory path does: what a comparison of the two paths on the same images needs. With
    # ``augment: false`` the training images take this transform too.
    crop_pct: float | None = Field(None, gt=0, le=1)

    def split_seed_for(self, seed: int) -> int:
        """The seed a trial of seed ``seed`` draws its validation split and subset from."""
        return seed if self.split_per_seed else self.split_seed


class TrainConfig(BaseModel):
    """The training recipe."""

    model_config = _STRICT

    # Passes over the training set (a budget ladder's largest budget by default).
    epochs: int = Field(10, gt=0)
    # Training images per step; the lr is per this batch.
    batch_size: int = Field(128, gt=0)
    # AdamW, peak lr per batch of 128. ConvMixer's CIFAR recipe uses lr 0.01 with batch 512
    # and one-cycle; 5e-3 at batch 128 is stable for every mixer here.
    lr: float = Field(5e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)  # DeiT/ConvMixer-style decoupled decay
    # ``wsd``: warm-up, stable lr, then a cool-down to ~0 (Hu et al. 2024, MiniCPM,
    # arXiv:2404.06395); the schedule a budget ladder (``budgets``) needs. mixerlab/schedule.py.
    schedule: Literal["onecycle", "cosine", "constant", "wsd"] = "onecycle"
    # Linear warm-up for "cosine" and "wsd"; one-cycle ramps over its first 25% of steps instead.
    warmup_epochs: float = Field(1.0, ge=0)
    # WSD's cool-down, as a fraction of the budget (rounded to whole epochs, at least one:
    # :func:`cooldown_epochs`). 0.2 and the 1-sqrt shape: Hägele et al. 2024 ("Scaling Laws and
    # Compute-Optimal Training Beyond Fixed Training Durations", arXiv:2405.18392) find a
    # cool-down of about 20% of the steps matches a cosine schedule's loss, and 1-sqrt beats
    # a linear decay. Read only by ``schedule: wsd``.
    cooldown_fraction: float = Field(0.2, gt=0, lt=1)
    # WSD's cool-down curve: lr x (1 - sqrt(t)) or lr x (1 - t) over the cool-down (Hägele et
    # al. 2024).
    cooldown_shape: Literal["1-sqrt", "linear"] = "1-sqrt"
    # A budget ladder: one run per arm and seed trains to the largest budget (epochs, which
    # ``epochs`` then defaults to) and, at each smaller budget's cool-down start, branches off a
    # cool-down to that budget and records it as its own row (``schedule: wsd`` only; the rule:
    # :func:`ladder_problem`; how it trains: mixerlab/train.py). None: one budget, ``epochs``.
    budgets: list[Annotated[int, Field(gt=0)]] | None = Field(None, min_length=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)  # Szegedy et al. 2016; 0.1 is the usual value
    grad_clip: float | None = Field(1.0, gt=0)  # global-norm clip, ConvMixer uses 1.0
    mixup: float = Field(0.0, ge=0)  # timm Mixup alpha; 0 disables
    cutmix: float = Field(0.0, ge=0)  # timm CutMix alpha; 0 disables
    ema: float | None = Field(None, gt=0, lt=1)  # EMA decay of weights, e.g. 0.999; None disables
    # Training images over which BatchNorm's statistics are recomputed before every evaluation
    # (mixerlab/precise_bn.py; 8192 is the usual setting); 0 evaluates with the running averages
    # training left, as every study before study 15 did.
    precise_bn: int = Field(0, ge=0)
    device: str = "auto"  # "auto" = cuda if available else cpu
    threads: int | None = Field(None, gt=0)  # CPU threads; None = what the trial was given
    compile: bool = False  # torch.compile on CUDA
    # NHWC memory layout for a trial without a measured way (mixerlab train; studies from
    # before ways were chosen). A sweep measures the layout per configuration
    # (mixerlab/execution.py): channels_last is 1.5x faster for the conv mixer here, NCHW
    # faster for the token-mixing MLP. Set in a spec, it pins the layout.
    channels_last: bool = True
    # Images per batch for validation, test and throughput timing.
    eval_batch_size: int = Field(512, gt=0)
    measure_throughput: bool = True  # time inference with mixerlab.measure after training
    # How the trial runs (precision, layout, attention kernel; mixerlab/execution.py), set by
    # the sweep from its measured plan. None: as before executions were chosen (fp32 on CPU,
    # this config's channels_last). Not part of the trial's id: how, not what.
    execution: Execution | None = None

    @model_validator(mode="before")
    @classmethod
    def _ladder_epochs(cls, data):
        # A ladder trains to its largest budget: that is its ``epochs`` unless given.
        if isinstance(data, dict) and data.get("budgets") and "epochs" not in data:
            budgets = data["budgets"]
            if isinstance(budgets, list) and all(isinstance(b, int) for b in budgets):
                data = {**data, "epochs": max(budgets)}
        return data

    @model_validator(mode="after")
    def _ladder(self):
        if self.budgets is not None:
            problem = ladder_problem(self.schedule, self.budgets, self.warmup_epochs,
                                     self.cooldown_fraction, self.epochs)
            if problem:
                raise ValueError(problem)
        return self

    @property
    def ladder(self) -> list[int]:
        """The budgets (epochs) this trial records a row for, smallest first: ``budgets``, or
        ``[epochs]`` for a trial without a ladder."""
        return list(self.budgets) if self.budgets else [self.epochs]

    def cooldown_start(self, budget: int) -> int:
        """The epoch a WSD run of ``budget`` epochs starts its cool-down at: where a ladder
        branches off for that budget (the main branch's stable weights until then)."""
        return budget - cooldown_epochs(budget, self.cooldown_fraction)

    @property
    def epochs_trained(self) -> int:
        """Epochs a trial trains in all: its ``epochs``, plus, for a ladder, every smaller
        budget's cool-down branch (what its time costs: sweep/estimate.py)."""
        return self.epochs + sum(cooldown_epochs(b, self.cooldown_fraction) for b in self.ladder[:-1])


def cooldown_epochs(budget: int, fraction: float) -> int:
    """Epochs of a WSD cool-down for a budget of ``budget`` epochs: ``fraction`` of it, rounded
    half up to whole epochs and at least one, so a ladder's branch starts at an epoch boundary,
    where the trial checkpoints (budgets 3, 10, 30 at 0.2: 1, 2 and 6 epochs)."""
    return max(1, int(fraction * budget + 0.5))


def ladder_problem(schedule: str, budgets: list[int], warmup_epochs: float, fraction: float,
                   epochs: int | None = None) -> str | None:
    """What is wrong with a budget ladder, as one sentence naming the fix; None if nothing.

    The one rule, read by :class:`TrainConfig` and by ``spec.load_spec`` (which says where):
    the schedule is ``wsd`` (only a warm-up-stable-decay schedule has a stable phase that
    budgets can share), the budgets increase strictly, each is at least its warm-up plus its
    cool-down (else its cool-down would start before the warm-up ends), and ``epochs``, if
    given, is the largest budget (the main branch trains to it)."""
    if schedule != "wsd":
        return (f"train.budgets: a budget ladder needs schedule: wsd (got {schedule}): its budgets "
                "share one run's stable phase, which only warm-up-stable-decay has; set "
                "train.schedule: wsd or remove train.budgets")
    if any(b >= c for b, c in zip(budgets, budgets[1:])):
        return (f"train.budgets: {list(budgets)} is not strictly increasing; list each budget once, "
                "smallest first, e.g. [3, 10, 30]")
    for b in budgets:
        cool = cooldown_epochs(b, fraction)
        if b < warmup_epochs + cool:
            return (f"train.budgets: budget {b} is shorter than its warm-up ({warmup_epochs:g} "
                    f"epoch(s)) plus cool-down ({cool} epoch(s)); give budgets of at least "
                    f"{warmup_epochs + cool:g} epochs, or shorten train.warmup_epochs")
    if epochs is not None and epochs != budgets[-1]:
        return (f"train.epochs ({epochs}) is not the ladder's largest budget ({budgets[-1]}): a "
                "ladder trains to its largest budget; remove train.epochs")
    return None


# TrainConfig's fields that say how a trial runs, not what it computes: never part of its id
# (checkpoint.config_hash), nor of its record's recipe columns.
HOW_FIELDS = frozenset({"device", "threads", "eval_batch_size", "measure_throughput", "execution"})


class TrialConfig(BaseModel):
    """Everything that defines one trial."""

    model_config = _STRICT

    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    seed: int = 0


def validation_message(err: ValidationError, where: str = "") -> str:
    """Turn pydantic's multi-line error into one line that names the key and the problem."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}' (remove it or check its spelling)")
        else:
            parts.append(f"'{loc}': {e['msg']} (got {e.get('input')!r})")
    prefix = f"{where}: " if where else ""
    return prefix + "; ".join(parts)


def parse(cls: type[BaseModel], data: dict, where: str = ""):
    """Validate ``data`` into ``cls``, raising :class:`ConfigError` with one clear line."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(validation_message(err, where)) from None
