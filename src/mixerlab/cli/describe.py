"""``mixerlab describe``: parameters, MACs, FLOPs, tokens, stages and (optionally) throughput of a model."""

from __future__ import annotations

import json

from mixerlab.cli.options import add_model_options, model_config
from mixerlab.measure import describe_model
from mixerlab.models import create_model, relevant_factors, uses_pos_embed


def register(sub) -> None:
    p = sub.add_parser("describe", help="size and cost of one model configuration")
    add_model_options(p)
    p.add_argument("--throughput", action="store_true",
                   help="also measure inference and training-step images/s (takes seconds)")
    p.add_argument("--batch-size", type=int, default=256, help="batch for --throughput")
    p.add_argument("--device", default="cpu", help="device for --throughput (cpu, cuda, cuda:1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = model_config(args)
    model = create_model(cfg)
    shape = (cfg.in_chans, cfg.image_size, cfg.image_size)
    # The factors that shape this model: ``model`` for a reference architecture, the mixer,
    # layout, stem and the rest for the skeleton (whose ``model`` value names no arrangement).
    record = {"variant": cfg.label}
    record.update({k: getattr(cfg, k) for k in (*relevant_factors(cfg), "image_size", "in_chans",
                                               "num_classes")})
    stages = model.stage_plan() if hasattr(model, "stage_plan") else []  # skeleton layouts only
    if stages:  # tokens and grid are the stem's: what the first blocks see
        record.update(tokens=stages[0]["tokens"], grid=stages[0]["grid"],
                      pos_embed=uses_pos_embed(cfg))
    record.update(describe_model(model, shape, num_classes=cfg.num_classes,
                                 throughput=args.throughput, device=args.device,
                                 batch_size=args.batch_size))
    if args.json:
        print(json.dumps({**record, "stages": stages} if stages else record, indent=2, default=str))
        return 0
    shown = _readable(record, pyramid=len(stages) > 1)
    width = max(len(k) for k in shown)
    for k, v in shown.items():
        print(f"{k:<{width}}  {_fmt(v)}")
    if stages:
        print()
        print(_table(stages))
    return 0


def _readable(record: dict, pyramid: bool) -> dict:
    """The text form's labels: in a pyramid, tokens and grid are the stem's (the first stage's)."""
    return {(f"stem {k}" if pyramid and k in ("tokens", "grid") else k): v for k, v in record.items()}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _table(rows: list[dict]) -> str:
    """Rows of equal keys as a right-aligned text table, one header line."""
    cols = list(rows[0])
    cells = [cols] + [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)
