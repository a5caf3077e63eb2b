"""``waveflow train``: the Accelerate trainer on a run config."""

from __future__ import annotations

import sys

from ..config import bundled_configs
from ..errors import WaveflowError
from .common import add_command


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "train",
        "train a vocoder (one device, or many under accelerate launch)",
        "Train a WaveGlow on a folder of speech with Accelerate: exact NLL, mixed precision, gradient "
        "accumulation, checkpoints you can resume exactly, TensorBoard logs and an exported model file "
        "(RUN_DIR/model.pt). The same command runs on one device or, under `accelerate launch`, on many. "
        "Settings come from --config, then KEY=VALUE overrides (section.key=value, e.g. train.lr=2e-4); "
        "unknown keys and wrong types are refused before anything starts. Ctrl-C or SIGTERM saves a state and "
        "stops (exit 130/143); running the same command again continues exactly. On resume, train.lr, "
        "max_steps, max_minutes and the logging/validation/saving intervals may change; settings the state "
        "depends on (model, mel, data split, batch shape, seed...) are refused if changed.",
        "examples:\n"
        "  waveflow train --config tiny data.root=corpus/ train.run_dir=runs/tiny\n"
        "  waveflow train --config 256 data.root=LJSpeech-1.1 train.run_dir=runs/lj --resume\n"
        "  accelerate launch --multi_gpu --num_processes 4 -m waveflow train --config 256 \\\n"
        "      data.root=LJSpeech-1.1 train.run_dir=runs/lj\n"
        "  waveflow train --config 256 data.root=my_voice/ train.run_dir=runs/ft \\\n"
        "      train.init_from=waveglow_256channels_universal_v5.pt train.lr=5e-5     (fine-tune NVIDIA's model)",
    )
    p.add_argument("--config", required=True, metavar="NAME|FILE",
                   help=f"a bundled config ({', '.join(bundled_configs())}) or a YAML run config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.max_steps=1000")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest state in RUN_DIR/checkpoints, failing if there is none "
                   "(same as train.resume=latest; the default train.resume=auto continues if it can)")
    p.add_argument("--prepare-only", action="store_true",
                   help="only scan the data and write the split lists (RUN_DIR/split/*.txt), then exit")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train.config import load_run_config

    overrides = list(args.overrides) + (["train.resume=latest"] if args.resume else [])
    cfg = load_run_config(args.config, overrides)  # a bad key or type fails here, before any work
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    trainer = trainer_module()
    from ..train.state import StoppedBySignal

    try:
        trainer.run(cfg, prepare_only=args.prepare_only)
    except StoppedBySignal as e:  # a state was saved: say how to go on, exit as the signal asks (130, 143)
        print(e.message, file=sys.stderr)
        return {"SIGINT": 130, "SIGTERM": 143}.get(e.signame, 130)
    return 0


def trainer_module():
    """:mod:`waveflow.train.trainer`, or a clear error saying what to install (training needs the ``train``
    extra: Accelerate and TensorBoard; inference does not)."""
    try:
        from ..train import trainer
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("accelerate", "tensorboard"):
            raise WaveflowError(f"training needs {e.name.split('.')[0]}, which is not installed: "
                                'pip install "waveflow[train]"') from None
        raise
    return trainer
