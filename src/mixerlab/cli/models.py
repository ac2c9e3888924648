"""``mixerlab models``: the registered token mixers, layouts, stems and reference architectures."""

from __future__ import annotations

import json

from mixerlab.models import LAYOUTS, STEMS, get_mixer, list_mixers
from mixerlab.models.factory import SHARED_FACTORS
from mixerlab.models.reference import list_references, reference_description


def register(sub) -> None:
    p = sub.add_parser("models", help="list token mixers, layouts, stems and reference architectures")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    mixers = []
    for name in list_mixers():
        info = get_mixer(name)
        mixers.append({
            "mixer": name, "factors": list(dict.fromkeys((*SHARED_FACTORS, *info.uses))), "pos_embed": info.pos_embed,
            "description": info.description, "paper": info.paper,
        })
    refs = [{"model": n, "description": reference_description(n)} for n in list_references()]
    layouts = [{"layout": n, "description": _first_line(c)} for n, c in LAYOUTS.items()]
    stems = [{"stem": n, "description": _first_line(c)} for n, c in STEMS.items()]
    if args.json:
        print(json.dumps({"mixers": mixers, "layouts": layouts, "stems": stems,
                          "references": refs}, indent=2))
        return 0
    print("Token mixers (mixerlab describe --mixer NAME):")
    for m in mixers:
        print(f"  {m['mixer']:<10} {m['description']}")
        print(f"  {'':<10} factors: {', '.join(m['factors'])}"
              f"{'  (+ learned position embeddings)' if m['pos_embed'] else ''}  [{m['paper']}]")
    print("\nLayouts (--layout) and stems (--stem) of the skeleton, for every mixer:")
    for row in layouts + stems:
        kind = "layout" if "layout" in row else "stem"
        print(f"  {kind + ' ' + row[kind]:<17} {row['description']}")
    print("  (and channel_mlp_ratio: the channel MLP's hidden ratio if not mlp_ratio)")
    print("\nReference architectures from timm (mixerlab describe --model NAME):")
    for r in refs:
        print(f"  {r['model']:<24} {r['description']}")
    print("  ...and any name in timm.list_models(), e.g. convmixer_1536_20, vit_tiny_patch16_224")
    print("\nEvery model also takes image_size, in_chans and num_classes (set from the data set).")
    return 0


def _first_line(obj) -> str:
    doc = (obj.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""
