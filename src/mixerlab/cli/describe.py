"""``mixerlab describe``: parameters, MACs, FLOPs, tokens and (optionally) throughput of a model."""

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
    record = {k: getattr(cfg, k) for k in ("model", *relevant_factors(cfg), "image_size",
                                          "in_chans", "num_classes")}
    record["variant"] = cfg.label
    if cfg.model == "isotropic":
        side = cfg.image_size // cfg.patch_size
        record.update(tokens=side * side, grid=f"{side}x{side}", pos_embed=uses_pos_embed(cfg))
    record.update(describe_model(model, shape, num_classes=cfg.num_classes,
                                 throughput=args.throughput, device=args.device,
                                 batch_size=args.batch_size))
    if args.json:
        print(json.dumps(record, indent=2, default=str))
        return 0
    width = max(len(k) for k in record)
    for k, v in record.items():
        if isinstance(v, float):
            v = f"{v:,.1f}"
        elif isinstance(v, int) and not isinstance(v, bool):
            v = f"{v:,}"
        print(f"{k:<{width}}  {v}")
    return 0
