"""Make a bundled voice (``waveflow/voices/<name>.pt``) from a trained model file: weights stored in float16
(half the size; the model still runs in any dtype: weights are cast up on load), and metadata saying what it
was trained on, how long, and how it scores, which ``waveflow info <name>`` prints.

    python scripts/bundle_voice.py runs/starter/model.pt waveflow/voices/starter.pt \\
        --meta trained_on="flite slt/awb/rms/kal + festival slt/kal, 648 clips" --meta train_minutes=90 \\
        --scores quality.json --sigma 0.9
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from waveflow.audio import atomic_path
from waveflow.checkpoints import load_checkpoint

MAX_BYTES = 15_000_000


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a waveflow model file (e.g. a run's model.pt)")
    p.add_argument("output", type=Path, help="the bundled voice file to write")
    p.add_argument("--name", default="starter", help="the voice's name")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="extra metadata (repeatable)")
    p.add_argument("--scores", type=Path, help="bench_quality.py JSON: the voice's row of each set goes in")
    p.add_argument("--sigma", type=float, help="recommended latent std (the Vocoder's default for this voice)")
    return p


def scores_line(path: Path, name: str) -> dict[str, str]:
    """``{"scores <set>": "PESQ 1.40, STOI 0.85, ..."}`` from a bench_quality record."""
    table = json.loads(path.read_text())["table"]
    out = {}
    for set_name, rows in table.items():
        row = rows.get(name) or {}
        parts = [f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, (int, float)) and k != "sigma"]
        if parts:
            out[f"scores ({set_name})"] = ", ".join(parts)
    return out


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    payload = torch.load(args.model, map_location="cpu", weights_only=True)
    load_checkpoint(args.model)  # refuses anything that is not a loadable waveflow model file
    meta = dict(payload.get("meta") or {})
    meta["name"] = args.name
    meta["origin"] = "waveflow-bundled"
    for item in args.meta:
        key, _, value = item.partition("=")
        meta[key] = value
    if args.sigma is not None:
        meta["sigma"] = args.sigma
    if args.scores:
        meta.update(scores_line(args.scores, args.name))
    payload["meta"] = meta
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    with atomic_path(args.output) as tmp:
        torch.save(payload, tmp)
        size = tmp.stat().st_size
        if size > MAX_BYTES:  # raised inside atomic_path: no rename, an existing voice file is left as it was
            raise SystemExit(f"error: {size / 1e6:.2f} MB, larger than {MAX_BYTES / 1e6:.0f} MB; "
                             f"{args.output} not written")
        load_checkpoint(tmp)  # and it loads back, before it replaces anything
    print(f"{args.output}: {size / 1e6:.2f} MB, {sum(v.numel() for v in payload['state_dict'].values()):,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
