"""``waveflow vocode``, ``synth`` and ``eval``: the commands that run a Vocoder over files."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import (
    add_command,
    add_output_options,
    add_progress_options,
    add_vocoder_options,
    default_of,
    make_vocoder,
    run_audio_job,
)


def add_vocode_parser(sub) -> None:
    p = add_command(
        sub,
        "vocode",
        "mel files (.npy/.pt) -> audio files",
        "Vocode mel spectrograms (Tacotron2/NVIDIA layout (n_mels, frames), also (1, n_mels, frames); "
        "(frames, n_mels) when unambiguous) into audio, mirroring the input tree in OUT_DIR. Mels of similar "
        "length are batched. Each file is validated; a bad one is reported with its reason and the others are "
        "written. Two inputs that would write one output are refused before any work. Outputs appear complete or "
        "not at all; existing ones are skipped unless --overwrite, so an interrupted run (Ctrl-C, SIGTERM, a kill, "
        "a full disk) resumes where it stopped. Exit code 1 if any file failed. Under accelerate launch (or "
        "torchrun) the processes share the files, each on its own device; --shard K/N splits them between the "
        "tasks of a job array. Long mels are vocoded a chunk at a time straight into their output, in flat memory; "
        "inputs longer than --max-seconds fail, naming their length.",
        "examples:\n  waveflow vocode mels/ -o wavs/ --checkpoint voices/ljspeech.pt\n"
        "  waveflow vocode 'tts_out/**/*.pt' -o wavs/ --checkpoint voices/nvidia.pt --device cuda --dtype float16 "
        "--denoise 0.02\n  waveflow vocode mels/ -o flacs/ --checkpoint voices/my.pt --format flac --mel-scale log10\n"
        "  accelerate launch --num_processes 4 -m waveflow vocode mels/ -o wavs/ --checkpoint voices/my.pt"
        "   (4 GPUs share the files)\n"
        "  waveflow vocode mels/ -o wavs/ --shard $SLURM_ARRAY_TASK_ID/8   (one task of an 8-task job array)",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="mel files, folders (recursive) or quoted globs")
    add_vocoder_options(p)
    add_output_options(p)
    from ..jobs.writing import JobOptions

    p.add_argument("--batch-frames", type=int, default=default_of(JobOptions, "batch_frames"),
                   help="padded mel frames per batch (files x longest); 1 = one file at a time")
    p.add_argument("--jobs", type=int, default=default_of(JobOptions, "jobs"), help="threads reading mels and writing audio")
    from ..mel_io import MEL_LAYOUTS, MEL_SCALES

    p.add_argument("--mel-layout", choices=MEL_LAYOUTS, default="auto",
                   help="how 2-D mel arrays are laid out; auto reads (frames, n_mels) only when unambiguous")
    p.add_argument("--mel-scale", choices=MEL_SCALES, default="ln",
                   help="log scale of the mel files (Tacotron2: ln of magnitudes); ln-power (ln of a power mel, as "
                        "np.log(librosa.feature.melspectrogram(...)) gives), log10 and dB (20 log10) are converted")
    p.set_defaults(func=run_vocode)


def run_vocode(args) -> int:
    from ..jobs.shard import batch_window
    from ..jobs.vocode import vocode_files
    from ..mel_io import MEL_EXTENSIONS

    return run_audio_job(args, MEL_EXTENSIONS, vocode_files, window=batch_window)


def add_synth_parser(sub) -> None:
    p = add_command(
        sub,
        "synth",
        "copy synthesis: audio -> mel -> vocoded audio",
        "Resynthesize recordings through the model (audio of any rate -> the model's mel -> audio at the "
        "model's rate), to hear how a model does on real speech. The input tree is mirrored in OUT_DIR. It costs "
        "what vocode costs on the same audio (measured on 2 CPU cores with the starter voice: 0.13 s per second of "
        "audio, plus about 4 s to start).",
        "examples:\n  waveflow synth recordings/ -o resynth/ --checkpoint voices/ljspeech.pt\n"
        "  waveflow synth clip_48k.flac -o out/ --checkpoint voices/nvidia.pt --denoise 0.05",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files, folders (recursive) or quoted globs")
    add_vocoder_options(p)
    add_output_options(p)
    p.set_defaults(func=run_synth)


def run_synth(args) -> int:
    from ..jobs.discover import AUDIO_INPUTS
    from ..jobs.synth import synth_files

    return run_audio_job(args, AUDIO_INPUTS, synth_files)


def add_eval_parser(sub) -> None:
    p = add_command(
        sub,
        "eval",
        "copy-synthesis metrics of a model (and a Griffin-Lim baseline)",
        "Resynthesize test recordings and compare them with the originals: multi-resolution STFT distance, "
        "log-mel L1, mel-cepstral distortion, wideband PESQ, STOI, F0 RMSE and voiced/unvoiced F1, and the "
        "model's test NLL; the same for Griffin-Lim on the same mels. Definitions: waveflow/metrics.py. On 2 CPU "
        "cores with the starter voice, about 0.8 s per second of audio after 5 s of start-up: pyin (--no-f0) and "
        "the Griffin-Lim baseline (--griffin-lim-iters 0) are most of it.",
        "examples:\n  waveflow eval LJSpeech-1.1 --checkpoint voices/ljspeech.pt --limit 100 --json eval.json\n"
        "  waveflow eval runs/tiny/test.txt --checkpoint runs/tiny/model.pt\n"
        "  waveflow eval clips/ --checkpoint voices/my.pt --griffin-lim-iters 0 --no-f0",
    )
    p.add_argument("inputs", nargs="+", metavar="IN",
                   help="audio files, folders, an LJSpeech folder or a list file (one clip per line)")
    add_vocoder_options(p)
    p.add_argument("--limit", type=int, help="evaluate at most this many clips (the first ones)")
    from ..jobs.eval import evaluate

    p.add_argument("--griffin-lim-iters", type=int, default=default_of(evaluate, "griffin_lim_iters"), help="Griffin-Lim iterations (0 = no baseline)")
    p.add_argument("--no-pesq", action="store_true", help="skip PESQ")
    p.add_argument("--no-stoi", action="store_true", help="skip STOI")
    p.add_argument("--no-f0", action="store_true", help="skip F0 and V/UV (pyin is the slowest metric)")
    p.add_argument("--json", type=Path, help="write the table, per-file values and settings as JSON here")
    add_progress_options(p, summary=False)
    p.set_defaults(func=run_eval)


def run_eval(args) -> int:
    from ..checkpoints import load_checkpoint
    from ..jobs.eval import eval_files, evaluate, write_report
    from ..metrics import MetricSet

    notes: list[str] = []
    files = eval_files(args.inputs, notes)[: args.limit]
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    which = MetricSet(pesq=not args.no_pesq, stoi=not args.no_stoi, f0=not args.no_f0)
    checkpoint = load_checkpoint(args.checkpoint, weight_norm=False)
    result = evaluate(make_vocoder(args, checkpoint), files, checkpoint=checkpoint, which=which,
                      griffin_lim_iters=args.griffin_lim_iters, seed=args.seed, progress=not args.no_progress)
    return write_report(result, args.json)
