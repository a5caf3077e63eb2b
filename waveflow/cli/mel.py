"""``waveflow mel``: audio -> log-mel files."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_progress_options, add_shard_option, finish, job_part


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "mel",
        "audio files -> log-mel spectrograms (.npy/.pt)",
        "Compute log-mel spectrograms of audio files (Tacotron2/NVIDIA WaveGlow features by default), "
        "mirroring the input tree in OUT_DIR. Files are mixed down to mono and resampled to the mel "
        "config's rate. Existing outputs are skipped unless --overwrite; bad files are reported and skipped; "
        "two inputs that would write one output are refused before any work. Outputs appear complete or not at "
        "all, so an interrupted run resumes. --shard K/N (or accelerate launch) shares the files out.",
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
    p.add_argument("--device", default="cpu", help="torch device for the STFT (auto: cuda, then mps, then cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_shard_option(p)
    add_progress_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..inference.runtime import pick_device
    from ..jobs.mel import extract_mels
    from ..mel import MelConfig

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
        from ..checkpoints import load_checkpoint

        config = load_checkpoint(args.checkpoint).mel_config.replace(**overrides)
    else:
        config = MelConfig.for_sample_rate(args.sample_rate or 22050, **overrides)
    part = job_part(args)
    device = pick_device(part.launch.device(args.device) if part.launch else args.device)
    summary = extract_mels(args.inputs, args.out_dir, config, args.format, args.overwrite, str(device),
                           not args.no_progress, part=part)
    return finish(summary, args.summary, "mel files")
