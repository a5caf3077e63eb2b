"""What every ``waveflow`` command shares: the help formatter, option groups used by several commands, the
vocoder they build, and how a folder job ends. Defaults come from the library's own signatures, so the
command line never repeats (or drifts from) a library default."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps example blocks as written and shows defaults that say something (not None, False or [], and
    not when the help text already speaks of its default)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        quiet = action.default is None or action.default is False or action.default == [] \
            or action.default == argparse.SUPPRESS
        if quiet or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_command(sub, name: str, help: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """A subcommand parser with waveflow's help formatting."""
    return sub.add_parser(name, help=help, description=description, epilog=epilog, formatter_class=Formatter)


def default_of(func: Callable, name: str):
    """The default of parameter ``name`` of ``func`` (a library function or class): one place for defaults."""
    target = func.__init__ if inspect.isclass(func) else func
    return inspect.signature(target).parameters[name].default


def add_progress_options(p: argparse.ArgumentParser, summary: bool = True) -> None:
    """``--summary FILE`` (a folder job's summary as JSON) and ``--no-progress``."""
    if summary:
        p.add_argument("--summary", type=Path, help="also write the summary as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_vocoder_options(p: argparse.ArgumentParser) -> None:
    """How a checkpoint becomes a :class:`~waveflow.inference.Vocoder` (shared by vocode, synth and eval)."""
    from ..checkpoints import DEFAULT_VOICE
    from ..inference import DTYPES, Vocoder
    from ..inference.vocoder import DEFAULT_SIGMA
    from ..jobs.writing import JobOptions
    from ..kernels import KERNELS

    p.add_argument("--checkpoint", type=Path, default=Path(DEFAULT_VOICE), metavar="FILE|NAME",
                   help="model file (waveflow, NVIDIA or DLE checkpoint) or a bundled voice's name (default: the "
                        f"bundled {DEFAULT_VOICE!r} voice)")
    p.add_argument("--device", default="auto", help="torch device: auto (cuda, then mps, then cpu), cpu, cuda:1, ...")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="working precision")
    p.add_argument("--sigma", type=float, default=default_of(Vocoder, "sigma"),
                   help="standard deviation of the latent (default: the model's recommendation, e.g. 1.0 for the "
                        f"starter voice, else {DEFAULT_SIGMA:g}; the demo starts at the same value)")
    p.add_argument("--denoise", type=float, default=default_of(Vocoder, "denoiser_strength"), metavar="STRENGTH",
                   help="bias removal strength (0 = off; NVIDIA suggests 0.01 to 0.1)")
    p.add_argument("--seed", type=int, default=default_of(JobOptions, "seed"),
                   help="base seed; each file's latent is seeded by it and its path")
    p.add_argument("--kernels", choices=KERNELS, default=default_of(Vocoder, "kernels"),
                   help="inverse implementation: auto = fused Triton kernels on CUDA with float16/bfloat16, the "
                        "model's own (eager) inverse otherwise; off = always eager")


def add_output_options(p: argparse.ArgumentParser) -> None:
    """Where and how a folder job writes audio (shared by vocode and synth)."""
    from ..jobs.writing import FORMATS, SUBTYPES, JobOptions, OutputOptions

    p.add_argument("-o", "--out-dir", required=True, type=Path, help="output folder (input tree mirrored)")
    p.add_argument("--format", choices=FORMATS, default=default_of(OutputOptions, "fmt"), help="output file format")
    p.add_argument("--subtype", choices=SUBTYPES, default=default_of(OutputOptions, "subtype"),
                   help="sample format (FLOAT: wav only)")
    p.add_argument("--rescale", action="store_true", help="scale clipping outputs to just under full scale")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--max-seconds", type=float, default=default_of(JobOptions, "max_seconds"), metavar="S",
                   help="an input that would make more audio than this fails, naming its length (0 = no limit)")
    add_shard_option(p)
    add_progress_options(p)


def add_shard_option(p: argparse.ArgumentParser) -> None:
    """``--shard K/N``: one task of a job array does shard K (from 0) of the planned file list."""
    p.add_argument("--shard", metavar="K/N",
                   help="do only shard K (0 to N-1) of the planned files, for job arrays (SLURM and the like): "
                        "N tasks with K = 0..N-1 cover every file exactly once. Under accelerate launch / "
                        "torchrun the processes share the work without it")


def job_part(args):
    """This process's share of a folder job: ``--shard`` and, when launched as several processes, its rank."""
    from ..jobs.shard import Launch, launched_processes, make_part

    if not hasattr(args, "_part"):
        launched = launched_processes() > 1
        if not launched and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_PORT" in os.environ:
            print("note: `accelerate launch --cpu --num_processes N` starts one process unless given "
                  "--mpirun_hostfile; on a machine without a GPU, `accelerate launch --multi_gpu --num_processes N` "
                  "starts N processes that share the work on the CPU", file=sys.stderr)
        args._part = make_part(getattr(args, "shard", None), Launch(args.device) if launched else None)
    return args._part


def job_options(args):
    """The :class:`~waveflow.jobs.writing.JobOptions` of ``vocode``/``synth``'s command line."""
    from ..jobs.writing import JobOptions, OutputOptions

    extra = {k: getattr(args, k) for k in ("batch_frames", "jobs", "mel_layout", "mel_scale") if hasattr(args, k)}
    return JobOptions(OutputOptions(args.format, args.subtype, args.rescale), seed=args.seed,
                      max_seconds=args.max_seconds, progress=not args.no_progress, **extra)


def run_audio_job(args, extensions, job: Callable, window=1) -> int:
    """``vocode`` and ``synth``: plan (discovery, output folder, collisions, names), then load the model, then
    work, then report. Nothing is loaded before the plan stands, so a bad ``-o`` or a collision costs nothing."""
    from ..jobs.planner import make_plan

    options = job_options(args)
    plan = make_plan(args.inputs, args.out_dir, extensions, f".{options.output.fmt}", overwrite=args.overwrite,
                     part=job_part(args), window=window)
    return finish(job(plan, make_vocoder(args), options), args.summary, "audio files")


def make_vocoder(args, checkpoint=None):
    """The :class:`~waveflow.inference.Vocoder` the options of :func:`add_vocoder_options` describe. The device is
    checked before the model is loaded; under a launch of several processes each takes its own."""
    from ..inference import Vocoder
    from ..inference.runtime import pick_device, resolve_dtype

    requested = job_part(args).launch.device(args.device) if job_part(args).launch else args.device
    device = pick_device(requested)
    resolve_dtype(args.dtype, device)  # a missing device or an unsupported dtype: one clear error, now
    note_default_voice(args.checkpoint)
    return Vocoder(checkpoint or args.checkpoint, device=device, dtype=args.dtype, sigma=args.sigma,
                   seed=args.seed, denoiser_strength=args.denoise, kernels=args.kernels)


def note_default_voice(checkpoint) -> None:
    """One line on stderr when the bundled default voice is used: which one, and how to get a better one."""
    from ..checkpoints.bundled import BETTER_VOICE_HINT, DEFAULT_VOICE, is_bundled

    if str(checkpoint) == DEFAULT_VOICE and is_bundled(checkpoint):
        print(f"note: using the bundled {DEFAULT_VOICE!r} voice (small, trained on a CPU; --checkpoint FILE for "
              f"another); {BETTER_VOICE_HINT}", file=sys.stderr)


def finish(summary, json_path: Path | None, what: str) -> int:
    """Report a folder job's summary (and write it as JSON; under a launch only the main process does);
    exit code 1 if any input failed or the job stopped (a full disk), 130/143 if Ctrl-C/SIGTERM stopped it."""
    if summary.main:
        summary.report(what=what)
        if json_path:
            summary.write_json(json_path)
    return summary.exit_code()
