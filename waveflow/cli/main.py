"""The ``waveflow`` command. Parsers are built here; the work is done by the modules they call.

Exit codes: 0 success, 1 an error or a failed input (reported on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__

EXAMPLES = """\
examples:
  waveflow mel wavs/ -o mels/                      audio folder -> Tacotron2-style log-mels (.npy)
  waveflow info waveglow_256channels_universal_v5.pt
  waveflow import waveglow_256channels_universal_v5.pt voices/nvidia.pt
  waveflow train --config configs/waveglow-tiny.yaml data.root=corpus/ train.run_dir=runs/tiny
  waveflow vocode mels/ -o wavs_out/ --checkpoint voices/nvidia.pt
  waveflow synth recordings/ -o resynth/ --checkpoint voices/nvidia.pt
  waveflow eval clips/ --checkpoint voices/nvidia.pt
  waveflow demo --checkpoint voices/nvidia.pt        web demo at http://127.0.0.1:7860
  waveflow quickstart                              offline: corpus -> tiny voice -> demo, in minutes
  waveflow <command> --help                        options of one command
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps example blocks as written and shows defaults that say something (not None, False or [], and
    not when the help text already speaks of its default)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        quiet = action.default is None or action.default is False or action.default == [] \
            or action.default == argparse.SUPPRESS
        if quiet or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _add(sub, name: str, help: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description, epilog=epilog, formatter_class=_Formatter)


# ----------------------------------------------------------------------------------------------- mel
def add_mel_parser(sub) -> None:
    p = _add(
        sub,
        "mel",
        "audio files -> log-mel spectrograms (.npy/.pt)",
        "Compute log-mel spectrograms of audio files (Tacotron2/NVIDIA WaveGlow features by default), "
        "mirroring the input tree in OUT_DIR. Files are mixed down to mono and resampled to the mel "
        "config's rate. Existing outputs are skipped unless --overwrite; bad files are reported and skipped.",
        "examples:\n  waveflow mel LJSpeech-1.1/wavs -o mels/\n"
        "  waveflow mel 'data/**/*.flac' -o mels/ --format pt --checkpoint voices/my.pt\n"
        "  waveflow mel clip.wav -o mels/ --sample-rate 16000",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files, folders (recursive) or quoted globs")
    p.add_argument("-o", "--out-dir", required=True, type=Path, help="output folder")
    p.add_argument("--format", choices=("npy", "pt"), default="npy", help="mel file format")
    p.add_argument("--checkpoint", type=Path, help="take the mel settings from this model file")
    p.add_argument("--sample-rate", type=int, help="Tacotron2-like settings scaled to this rate (default 22050)")
    p.add_argument("--n-fft", type=int)
    p.add_argument("--hop-length", type=int)
    p.add_argument("--win-length", type=int)
    p.add_argument("--n-mels", type=int)
    p.add_argument("--fmin", type=float)
    p.add_argument("--fmax", type=float)
    p.add_argument("--device", default="cpu", help="torch device for the STFT")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--summary", type=Path, help="also write the summary as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_mel)


def run_mel(args) -> int:
    from .mel import MelConfig
    from .mel_io import extract_mels

    overrides = {
        k: v
        for k, v in {
            "n_fft": args.n_fft,
            "hop_length": args.hop_length,
            "win_length": args.win_length,
            "n_mels": args.n_mels,
            "fmin": args.fmin,
            "fmax": args.fmax,
        }.items()
        if v is not None
    }
    if args.checkpoint:
        from .checkpoints import load_checkpoint

        config = load_checkpoint(args.checkpoint).mel_config.replace(**overrides)
    else:
        config = MelConfig.for_sample_rate(args.sample_rate or 22050, **overrides)
    summary = extract_mels(
        args.inputs, args.out_dir, config, args.format, args.overwrite, args.device, not args.no_progress
    )
    return _finish(summary, args.summary, "mel files")


def _finish(summary, json_path: Path | None, what: str) -> int:
    summary.report(what=what)
    if json_path:
        summary.write_json(json_path)
    return 1 if summary.failed else 0


# ----------------------------------------------------------------------------------------------- info/import
def add_info_parser(sub) -> None:
    p = _add(
        sub,
        "info",
        "describe a checkpoint (config, size, sample rate, origin)",
        "Print what a checkpoint holds: model config, parameter count, mel/sample-rate settings and where "
        "it came from. Reads waveflow files and NVIDIA WaveGlow / DeepLearningExamples checkpoints safely "
        "(nothing in the file is executed).",
        "examples:\n  waveflow info voices/ljspeech.pt\n  waveflow info waveglow_256channels_universal_v5.pt --json",
    )
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run_info)


def run_info(args) -> int:
    from .checkpoints import describe, load_checkpoint

    info = describe(load_checkpoint(args.checkpoint, weight_norm=False))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"checkpoint   {args.checkpoint}")
    print(f"origin       {info['origin']}")
    if info["name"]:
        print(f"name         {info['name']}")
    print(f"parameters   {info['parameters']:,} ({info['parameters'] / 1e6:.1f} M)")
    print(f"sample rate  {info['sample_rate']} Hz, hop {info['mel']['hop_length']}, {info['mel']['n_mels']} mels")
    print("model        " + ", ".join(f"{k}={v}" for k, v in info["model"].items()))
    print("mel          " + ", ".join(f"{k}={v}" for k, v in info["mel"].items()))
    for k, v in info["meta"].items():
        if k not in ("origin", "name"):
            print(f"{k:<12} {v}")
    return 0


def add_import_parser(sub) -> None:
    p = _add(
        sub,
        "import",
        "convert an NVIDIA WaveGlow checkpoint to waveflow's format",
        "Convert a foreign WaveGlow checkpoint (NVIDIA/waveglow's published .pt files, old 'glow_old' "
        "layouts, DeepLearningExamples / torch.hub files) into one waveflow model file. NVIDIA's code is not "
        "needed and nothing in the file is executed: only known WaveGlow classes are accepted.",
        "examples:\n  waveflow import waveglow_256channels_universal_v5.pt voices/nvidia-universal.pt\n"
        "  waveflow import nvidia_waveglowpyt_fp32_20190306.pth voices/dle.pt --name 'DLE LJSpeech'",
    )
    p.add_argument("source", type=Path, help="foreign (or waveflow) checkpoint")
    p.add_argument("output", type=Path, help="waveflow model file to write")
    p.add_argument("--sample-rate", type=int, help="rate the model was trained at (foreign files omit it; 22050)")
    p.add_argument("--name", help="voice name shown by the demo (default: file name)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=run_import)


def run_import(args) -> int:
    from .checkpoints import import_checkpoint

    ck = import_checkpoint(args.source, args.output, args.sample_rate, args.name, args.overwrite)
    print(
        f"imported {args.source} ({ck.origin}, {ck.model.num_parameters() / 1e6:.1f} M parameters, "
        f"{ck.mel_config.sample_rate} Hz) -> {args.output}"
    )
    return 0


# ----------------------------------------------------------------------------------------------- train
def add_train_parser(sub) -> None:
    p = _add(
        sub,
        "train",
        "train a vocoder (one device, or many under accelerate launch)",
        "Train a WaveGlow on a folder of speech with Accelerate: exact NLL, mixed precision, gradient "
        "accumulation, checkpoints you can resume exactly, TensorBoard logs and an exported model file "
        "(RUN_DIR/model.pt). The same command runs on one device or, under `accelerate launch`, on many. "
        "Settings come from --config, then KEY=VALUE overrides (section.key=value, e.g. train.lr=2e-4); "
        "unknown keys and wrong types are refused before anything starts.",
        "examples:\n"
        "  waveflow train --config configs/waveglow-tiny.yaml data.root=corpus/ train.run_dir=runs/tiny\n"
        "  waveflow train --config configs/waveglow-256.yaml data.root=LJSpeech-1.1 train.run_dir=runs/lj --resume\n"
        "  accelerate launch --multi_gpu --num_processes 4 -m waveflow train --config configs/waveglow-256.yaml \\\n"
        "      data.root=LJSpeech-1.1 train.run_dir=runs/lj\n"
        "  waveflow train --config configs/waveglow-256.yaml data.root=my_voice/ train.run_dir=runs/ft \\\n"
        "      train.init_from=waveglow_256channels_universal_v5.pt train.lr=5e-5     (fine-tune NVIDIA's model)",
    )
    p.add_argument("--config", type=Path, required=True, help="YAML run config (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.max_steps=1000")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest state in RUN_DIR/checkpoints, failing if there is none "
                   "(same as train.resume=latest; the default train.resume=auto continues if it can)")
    p.add_argument("--prepare-only", action="store_true",
                   help="only scan the data and write the split lists (RUN_DIR/split/*.txt), then exit")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    from .train import load_run_config, plain, run
    from .train_state import TrainingError

    overrides = list(args.overrides) + (["train.resume=latest"] if args.resume else [])
    cfg = load_run_config(args.config, overrides)  # a bad key or type fails here, before any work
    if args.print_config:
        import yaml

        from .config import to_dict

        print(yaml.safe_dump(plain(to_dict(cfg)), sort_keys=False), end="")
        return 0
    try:
        run(cfg, prepare_only=args.prepare_only)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------------------------- vocode/synth/eval
def _add_vocoder_options(p) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="model file (waveflow, NVIDIA or DLE checkpoint)")
    p.add_argument("--device", default="auto", help="torch device: auto (cuda, then mps, then cpu), cpu, cuda:1, ...")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32", help="working precision")
    p.add_argument("--sigma", type=float, default=0.6, help="standard deviation of the latent")
    p.add_argument("--denoise", type=float, default=0.0, metavar="STRENGTH",
                   help="bias removal strength (0 = off; NVIDIA suggests 0.01 to 0.1)")
    p.add_argument("--seed", type=int, default=1234, help="base seed; each file's latent is seeded by it and its path")
    p.add_argument("--kernels", choices=("auto", "off", "torch", "triton"), default="auto",
                   help="inverse implementation: auto = fused Triton kernels on CUDA with float16/bfloat16, the "
                        "model's own (eager) inverse otherwise; off = always eager")


def _add_output_options(p) -> None:
    p.add_argument("-o", "--out-dir", required=True, type=Path, help="output folder (input tree mirrored)")
    p.add_argument("--format", choices=("wav", "flac"), default="wav", help="output file format")
    p.add_argument("--subtype", choices=("PCM_16", "FLOAT"), default="PCM_16", help="sample format (FLOAT: wav only)")
    p.add_argument("--rescale", action="store_true", help="scale clipping outputs to just under full scale")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--summary", type=Path, help="also write the summary as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _vocoder(args, checkpoint=None):
    from .inference import Vocoder, pick_device

    return Vocoder(checkpoint or args.checkpoint, device=pick_device(args.device), dtype=args.dtype, sigma=args.sigma,
                   seed=args.seed, denoiser_strength=args.denoise, kernels=args.kernels)


def add_vocode_parser(sub) -> None:
    p = _add(
        sub,
        "vocode",
        "mel files (.npy/.pt) -> audio files",
        "Vocode mel spectrograms (Tacotron2/NVIDIA layout (n_mels, frames), also (1, n_mels, frames); "
        "(frames, n_mels) when unambiguous) into audio, mirroring the input tree in OUT_DIR. Mels of similar "
        "length are batched. Each file is validated; a bad one is reported with its reason and the others are "
        "written. Existing outputs are skipped unless --overwrite, so an interrupted run resumes. Exit code 1 if "
        "any file failed.",
        "examples:\n  waveflow vocode mels/ -o wavs/ --checkpoint voices/ljspeech.pt\n"
        "  waveflow vocode 'tts_out/**/*.pt' -o wavs/ --checkpoint voices/nvidia.pt --device cuda --dtype float16 "
        "--denoise 0.02\n  waveflow vocode mels/ -o flacs/ --checkpoint voices/my.pt --format flac --mel-scale log10",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="mel files, folders (recursive) or quoted globs")
    _add_vocoder_options(p)
    _add_output_options(p)
    p.add_argument("--batch-frames", type=int, default=4096,
                   help="padded mel frames per batch (files x longest); 1 = one file at a time")
    p.add_argument("--jobs", type=int, default=4, help="threads reading mels and writing audio")
    p.add_argument("--mel-layout", choices=("auto", "mels-first", "frames-first"), default="auto",
                   help="how 2-D mel arrays are laid out; auto reads (frames, n_mels) only when unambiguous")
    p.add_argument("--mel-scale", choices=("ln", "log10", "db"), default="ln",
                   help="log scale of the mel files (Tacotron2: ln); log10 and dB (20 log10) are converted")
    p.set_defaults(func=run_vocode)


def run_vocode(args) -> int:
    from .vocode import OutputOptions, vocode_files

    options = OutputOptions(args.format, args.subtype, args.rescale)
    summary = vocode_files(
        args.inputs, args.out_dir, _vocoder(args), options=options, batch_frames=args.batch_frames,
        overwrite=args.overwrite, jobs=args.jobs, mel_layout=args.mel_layout, mel_scale=args.mel_scale,
        seed=args.seed, progress=not args.no_progress,
    )
    return _finish(summary, args.summary, "audio files")


def add_synth_parser(sub) -> None:
    p = _add(
        sub,
        "synth",
        "copy synthesis: audio -> mel -> vocoded audio",
        "Resynthesize recordings through the model (audio of any rate -> the model's mel -> audio at the "
        "model's rate), to hear how a model does on real speech. The input tree is mirrored in OUT_DIR.",
        "examples:\n  waveflow synth recordings/ -o resynth/ --checkpoint voices/ljspeech.pt\n"
        "  waveflow synth clip_48k.flac -o out/ --checkpoint voices/nvidia.pt --denoise 0.05",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files, folders (recursive) or quoted globs")
    _add_vocoder_options(p)
    _add_output_options(p)
    p.set_defaults(func=run_synth)


def run_synth(args) -> int:
    from .vocode import OutputOptions, synth_files

    options = OutputOptions(args.format, args.subtype, args.rescale)
    summary = synth_files(args.inputs, args.out_dir, _vocoder(args), options=options, overwrite=args.overwrite,
                          seed=args.seed, progress=not args.no_progress)
    return _finish(summary, args.summary, "audio files")


def add_eval_parser(sub) -> None:
    p = _add(
        sub,
        "eval",
        "copy-synthesis metrics of a model (and a Griffin-Lim baseline)",
        "Resynthesize test recordings and compare them with the originals: multi-resolution STFT distance, "
        "log-mel L1, mel-cepstral distortion, wideband PESQ, STOI, F0 RMSE and voiced/unvoiced F1, and the "
        "model's test NLL; the same for Griffin-Lim on the same mels. Definitions: waveflow/metrics.py.",
        "examples:\n  waveflow eval LJSpeech-1.1 --checkpoint voices/ljspeech.pt --limit 100 --json eval.json\n"
        "  waveflow eval runs/tiny/test.txt --checkpoint runs/tiny/model.pt\n"
        "  waveflow eval clips/ --checkpoint voices/my.pt --griffin-lim-iters 0 --no-f0",
    )
    p.add_argument("inputs", nargs="+", metavar="IN",
                   help="audio files, folders, an LJSpeech folder or a list file (one clip per line)")
    _add_vocoder_options(p)
    p.add_argument("--limit", type=int, help="evaluate at most this many clips (the first ones)")
    p.add_argument("--griffin-lim-iters", type=int, default=32, help="Griffin-Lim iterations (0 = no baseline)")
    p.add_argument("--no-pesq", action="store_true", help="skip PESQ")
    p.add_argument("--no-stoi", action="store_true", help="skip STOI")
    p.add_argument("--no-f0", action="store_true", help="skip F0 and V/UV (pyin is the slowest metric)")
    p.add_argument("--json", type=Path, help="write the table, per-file values and settings as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_eval)


def run_eval(args) -> int:
    from .checkpoints import load_checkpoint
    from .metrics import MetricSet, eval_files, evaluate, write_report

    files = eval_files(args.inputs)[: args.limit]
    which = MetricSet(pesq=not args.no_pesq, stoi=not args.no_stoi, f0=not args.no_f0)
    checkpoint = load_checkpoint(args.checkpoint, weight_norm=False)
    result = evaluate(_vocoder(args, checkpoint), files, checkpoint=checkpoint, which=which,
                      griffin_lim_iters=args.griffin_lim_iters, seed=args.seed, progress=not args.no_progress)
    return write_report(result, args.json)


# ----------------------------------------------------------------------------------------------- demo/quickstart
def _add_server_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind; 0.0.0.0 makes the demo reachable from your network (no login!)")
    p.add_argument("--port", type=int, help="port; none = the first free one from 7860")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--max-seconds", type=float, default=30.0, help="longest clip (or mel) accepted")
    p.add_argument("--concurrency", type=int, default=1,
                   help="requests processed at once (others wait in Gradio's queue); bounds memory use")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs internet)")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")


def add_demo_parser(sub) -> None:
    p = _add(
        sub,
        "demo",
        "web demo: vocode mels, copy synthesis, compare voices, look inside the flow",
        "Start the Gradio demo on one or more voices (a voice is a checkpoint). The page has four tabs: "
        "vocode uploaded mels, copy synthesis of a clip, the same clip through several voices, and what the "
        "flow does to a clip (latent vs Gaussian, per-step log-determinants, NLL, samples at several sigmas). "
        "Example clips are made offline at start-up. Needs the demo extra: pip install -e '.[demo]'.",
        "examples:\n  waveflow demo --checkpoint runs/quickstart/tiny-flite-slt/model.pt\n"
        "  waveflow demo --voices voices/ --device cuda --dtype float16 --port 7860\n"
        "  waveflow demo --checkpoint a.pt --checkpoint b.pt --max-seconds 60 --concurrency 2",
    )
    p.add_argument("--voices", type=Path, metavar="DIR", help="offer every checkpoint (.pt/.pth/.ckpt) in DIR")
    p.add_argument("--checkpoint", type=Path, action="append", default=[], metavar="FILE",
                   help="a voice (repeatable)")
    _add_server_arguments(p)
    p.set_defaults(func=run_demo)


def _launch_demo(args, voices_dir: Path | None, checkpoints: list[Path]) -> int:
    from .demo_app import DemoUnavailable, load_demo_app

    try:
        app = load_demo_app()
        app.launch(voices_dir=voices_dir, checkpoints=checkpoints, host=args.host, port=args.port,
                   device=args.device, dtype=args.dtype, max_seconds=args.max_seconds,
                   concurrency=args.concurrency, share=args.share, open_browser=args.open)
    except DemoUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def run_demo(args) -> int:
    return _launch_demo(args, args.voices, args.checkpoint)


def add_quickstart_parser(sub) -> None:
    p = _add(
        sub,
        "quickstart",
        "make a voice corpus, train a tiny voice on CPU, vocode test clips, open the demo",
        "From nothing to a demo of your own voice, offline: the offline TTS engines (apt-get install "
        "espeak-ng flite) speak a small corpus, the tiny config trains on it on the CPU (a few minutes, with "
        "a progress bar; at most --minutes), held-out utterances are vocoded into OUT/vocoded/, and the demo "
        "starts on the new voice. Re-running resumes. The tiny voice is for trying the pipeline: its audio is noise rather "
        "than speech (README says how to get a real voice).",
        "examples:\n  waveflow quickstart\n  waveflow quickstart --steps 5000 --minutes 30 -o runs/qs-long\n"
        "  waveflow quickstart --steps 5 --utterances 12 --no-demo     (a smoke test, under a minute)",
    )
    p.add_argument("-o", "--out-dir", type=Path, default=Path("runs/quickstart"), help="output folder")
    p.add_argument("--voice", default="auto", help="TTS voice of the corpus (auto: flite-slt, else espeak-en-us)")
    p.add_argument("--utterances", type=int, default=40, help="corpus size")
    p.add_argument("--steps", type=int, default=1500,
                   help="training steps (the tiny model takes about 0.2 s a step on 2 idle CPU cores)")
    p.add_argument("--minutes", type=float, default=10.0,
                   help="stop training after this many minutes even if --steps are not done (0 = no limit); "
                        "running again continues training")
    p.add_argument("--test-clips", type=int, default=3, help="held-out utterances to vocode")
    p.add_argument("--seed", type=int, default=0, help="seed of training and vocoding")
    p.add_argument("--no-demo", action="store_true", help="stop after vocoding (for CI and scripts)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_server_arguments(p)
    p.set_defaults(func=run_quickstart)


def run_quickstart(args) -> int:
    from . import quickstart
    from .corpus import CorpusError
    from .train_state import TrainingError

    try:
        result = quickstart.run_quickstart(
            args.out_dir, voice=args.voice, utterances=args.utterances, steps=args.steps, minutes=args.minutes,
            seed=args.seed,
            test_clips=args.test_clips, device=args.device, progress=not args.no_progress,
        )
    except (quickstart.QuickstartError, CorpusError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(quickstart.report(result), file=sys.stderr, flush=True)
    if args.no_demo:
        return 0
    print("[4/4] demo: starting on the new voice", file=sys.stderr, flush=True)
    return _launch_demo(args, None, [result.model])


# ----------------------------------------------------------------------------------------------- main
PARSERS = [add_mel_parser, add_info_parser, add_import_parser, add_train_parser, add_vocode_parser, add_synth_parser,
           add_eval_parser]
PARSERS += [add_demo_parser, add_quickstart_parser]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waveflow",
        description="waveflow: WaveGlow-style neural vocoder toolkit (training, batch vocoding, NVIDIA import).",
        epilog=EXAMPLES,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"waveflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for add in PARSERS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # our errors name the file and the reason; no traceback for users
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
