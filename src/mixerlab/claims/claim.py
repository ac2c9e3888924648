"""A claim, declared in a study's spec: the sentence, the gaps that test it, and its rule.

A spec with ``claims:`` is a confirmatory study. Each claim is data, stated before the data
exist (its canonical form is registered in the study when the sweep starts:
:mod:`mixerlab.claims.registration`) and decided by one library function
(:func:`mixerlab.analysis.claims.decide_claims`)::

    claims:
      - name: P3
        text: Any token mixing beats none
        source: MetaFormer (Yu et al., arXiv:2210.13452)
        kind: beats                  # a is better than b
        gaps: [{a: {mixer: conv}, b: {mixer: identity}}]
        rope: 1.0                    # points of test accuracy
        alpha: 0.0125                # this claim's share of the study program's alpha
        budgets: [10, 30]            # epochs; decided at the largest, stability between the two largest

Rules (the one verdict rule is :mod:`mixerlab.analysis.verdict`):

- each gap is ``a - b`` of ``metric``, paired by seed, at the claim's largest budget; its
  interval is a paired t interval at ``1 - alpha / n_gaps`` (Bonferroni within the claim), or
  the anytime-valid confidence sequence at the same level where the study seeds adaptively;
- **stability across budgets**: the seed-paired change of every gap between the two largest
  budgets must have an interval (same level) inside ``[-band, +band]`` (default ``rope / 2``),
  else the claim is "undecided (still moving)". This replaces a per-arm convergence gate: an
  annealed schedule always lifts the last epochs, so only whether the *conclusion* moves with
  budget is asked (Li et al., "Budgeted Training", arXiv:1905.04753; the Deep Learning Tuning
  Playbook compares at fixed budgets for the same reason).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mixerlab.factors import GRID_FACTORS

_STRICT = ConfigDict(extra="forbid")


class GapSpec(BaseModel):
    """One seed-paired gap ``a - b``: each arm by the levels of the spec's factors that tell it
    apart (e.g. ``{mixer: attention}``); every other factor is held at the claim's budget."""

    model_config = _STRICT
    # The first arm, by the factor levels that tell it apart, e.g. {mixer: attention}.
    a: dict[str, Any]
    # The second arm (the gap is a - b).
    b: dict[str, Any]
    label: str | None = None  # default: "a - b" from the levels

    @field_validator("a", "b")
    @classmethod
    def _arm(cls, v: dict) -> dict:
        if not v:
            raise ValueError("name the arm by at least one factor level, e.g. {mixer: conv}")
        bad = sorted(set(v) - set(GRID_FACTORS))
        if bad:
            raise ValueError(f"'{bad[0]}' is not a factor; use one of {', '.join(GRID_FACTORS)}")
        if "epochs" in v:
            raise ValueError("the budget is not part of an arm; give the claim's 'budgets' instead")
        return v

    @model_validator(mode="after")
    def _differ(self):
        if self.a == self.b:
            raise ValueError("a and b are the same arm; a gap compares two different arms")
        return self

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        return f"{_levels(self.a)} - {_levels(self.b)}"


def _levels(at: dict) -> str:
    return ", ".join(str(v) if k in ("mixer", "model") else f"{k} {v}" for k, v in at.items())


class ClaimSpec(BaseModel):
    """A claim a study tests (see the module for the rule that decides it)."""

    model_config = _STRICT
    name: str  # short and unique within the study, e.g. P1
    text: str  # the claim as its source makes it
    source: str  # who claims it, with the citation
    # 'beats': a - b above the ROPE; 'within': a - b inside +-rope (equivalence).
    kind: Literal["beats", "within"]
    gaps: list[GapSpec] = Field(min_length=1)
    # Points of test accuracy: one point is about the smallest difference ConvMixer's own
    # ablations treat as meaningful (BatchNorm vs LayerNorm, 1.44 points on CIFAR-10; Trockman
    # & Kolter, arXiv:2201.09792, Sec. 3), and two to ten times one arm's seed-to-seed sd here.
    rope: float = Field(1.0, gt=0)
    alpha: float = Field(gt=0, lt=1)  # this claim's error rate (its share of a program's alpha)
    # Epochs at which the gaps are measured on the same seeds; decided at the largest. One
    # budget: decided there, with its stability not judged (the report says so).
    budgets: list[int] | None = None
    band: float | None = Field(None, gt=0)  # stability band (default: rope / 2)
    primary: bool = True  # a primary claim enters the answer's verdicts; else described only
    # The column the gaps are taken on (points of accuracy).
    metric: str = "test_acc"
    # The seeds the claim reads (default: the study's fixed seeds, or adaptive seeding's own).
    seeds: list[int] | None = None
    # Committed studies (folders beside this one) whose trials join this claim's gaps, e.g. a
    # longer budget measured earlier on the same arms and seeds.
    with_studies: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", v):
            raise ValueError("use up to 32 letters, digits, '-', '_' or '.'")
        return v

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, v):
        if v is not None and (not v or len(set(v)) != len(v) or min(v) <= 0):
            raise ValueError("give distinct positive epoch counts, e.g. [10, 30]")
        return sorted(v) if v else v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v):
        if v is not None and (len(v) < 2 or len(set(v)) != len(v)):
            raise ValueError("give at least two distinct seeds (a paired interval needs two)")
        return v

    @property
    def stability_band(self) -> float:
        return self.band if self.band is not None else self.rope / 2

    def canonical(self) -> dict:
        """The claim as registered: every field, defaults included, so a later default change
        cannot make a registered claim look edited or an edited one look registered."""
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        return hashlib.sha1(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[:12]
