"""Training state folders that survive a kill at any moment, and never run code when read.

``run_dir/checkpoints/step_NNNNNN/`` holds Accelerate's state (model weights as safetensors; optimizer,
scheduler, scaler and RNG states as tensors and plain values), the EMA weights (``ema.pt``, tensors) and
``trainer_state.json`` (step, data position, guard, config), which is written last: a folder without it is not a
complete state. A save goes to ``.tmp_step_NNNNNN`` and is renamed into place in one step, so the latest
``step_*`` folder is always complete; leftovers are cleaned up.

Before a state is resumed, every file in it is checked (:func:`verify_state`): pickled files are opened
weights-only (tensors and plain values; a file asking for anything else is refused, and nothing in it runs),
without reading their data. A refused or unreadable state is named, and resuming falls back to the previous
complete state if there is one.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import warnings
from pathlib import Path

from ..errors import WaveflowError

log = logging.getLogger("waveflow.train")


class TrainingError(WaveflowError, RuntimeError):
    """Training cannot go on (diverged, nothing to resume from, a run_dir of another run...)."""


class StateError(TrainingError):
    """A file of a training state folder is refused (not plain tensors and values) or unreadable."""


class StoppedBySignal(KeyboardInterrupt):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM after saving a state; running again continues it."""

    def __init__(self, signame: str, message: str):
        super().__init__(message)
        self.signame, self.message = signame, message


STATE_RE = re.compile(r"^step_(\d{6,})$")
STATE_MARKER = "trainer_state.json"  # written last: a folder without it is not a complete state


def state_name(step: int) -> str:
    return f"step_{step:06d}"


def list_states(checkpoint_dir: Path) -> list[tuple[int, Path]]:
    """Complete state folders ``(step, path)``, oldest first. Temporary and partial folders are ignored."""
    if not checkpoint_dir.is_dir():
        return []
    out = []
    for p in checkpoint_dir.iterdir():
        m = STATE_RE.match(p.name)
        if m and p.is_dir() and (p / STATE_MARKER).is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def tmp_state_dir(checkpoint_dir: Path, step: int) -> Path:
    return checkpoint_dir / f".tmp_{state_name(step)}"


def commit_state(tmp: Path, checkpoint_dir: Path, step: int, trainer_state: dict) -> Path:
    """Finish a state folder written to ``tmp``: write the marker, then rename it into place in one step.

    A kill before the rename leaves only a ``.tmp_`` folder, which is ignored and cleaned up; so the latest
    ``step_*`` folder is always complete.
    """
    marker = tmp / STATE_MARKER
    marker.write_text(json.dumps(trainer_state, indent=2) + "\n")
    final = checkpoint_dir / state_name(step)
    if final.exists():  # the same step saved again (e.g. the final save right after a periodic one)
        old = checkpoint_dir / f".old_{state_name(step)}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(checkpoint_dir)
    return final


def prune_states(checkpoint_dir: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` complete states, and leftovers of interrupted saves."""
    for _, path in list_states(checkpoint_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
    clean_partial(checkpoint_dir)


def clean_partial(checkpoint_dir: Path) -> None:
    if checkpoint_dir.is_dir():
        for p in checkpoint_dir.iterdir():
            if p.name.startswith((".tmp_", ".old_")) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


def read_trainer_state(state_dir: Path) -> dict:
    return json.loads((state_dir / STATE_MARKER).read_text())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def find_resume_state(resume: str, run_dir: Path, checkpoint_dir: Path) -> Path | None:
    """The state folder ``train.resume`` asks for: ``auto`` (the latest, if any), ``latest`` (the latest, or an
    error), ``never`` (``None``; an error if the run has states) or a path to a state folder.

    The state is verified (:func:`verify_state`); with ``auto``/``latest`` a refused state is named in the log
    and the previous complete one is taken instead. If none passes, :class:`StateError` names what was refused.
    """
    states = list_states(checkpoint_dir)
    if resume == "never":
        if states:
            raise TrainingError(
                f"{run_dir} already holds training states (latest {states[-1][1].name}); use "
                "train.resume=auto to continue it, or choose another train.run_dir"
            )
        return None
    if resume not in ("auto", "latest"):
        path = Path(resume)
        if not (path / STATE_MARKER).is_file():
            raise TrainingError(f"train.resume={resume}: not a complete training state folder")
        verify_state(path)
        return path
    if not states:
        if resume == "latest":
            raise TrainingError(f"train.resume=latest: no complete training state in {checkpoint_dir}")
        return None
    refused = []
    for _, path in reversed(states):
        try:
            verify_state(path)
        except StateError as e:
            refused.append(str(e))
            log.warning("%s; trying the previous state", e)
            continue
        if refused:
            log.warning("resuming from %s, the latest state that passed the checks", path.name)
        return path
    raise StateError(checkpoint_dir, "no training state can be resumed: " + "; ".join(refused) +
                     ". Remove the refused files' folders to start over (or choose another train.run_dir)")


# Accelerate's own weights-only allow-list (numpy arrays and dtypes of the RNG states), where it has one.
def _safe_globals() -> list:
    try:
        from accelerate.utils.other import TORCH_SAFE_GLOBALS
    except ImportError:
        return []
    return list(TORCH_SAFE_GLOBALS)


REQUIRED = (("model.safetensors", "pytorch_model.bin"), ("optimizer.bin",), ("scheduler.bin",))


def verify_state(state_dir: Path) -> None:
    """Check a state folder before anything in it is loaded.

    ``trainer_state.json`` must parse, Accelerate's required files must be there, and every pickled file
    (``*.bin``, ``*.pkl``, ``*.pt``) must open weights-only: tensors and plain values (and numpy arrays, as in
    Accelerate's RNG states). Opening uses ``mmap``, so tensor data is not read.

    Raises:
        StateError: naming the first refused, unreadable or missing file and why.
    """
    marker = state_dir / STATE_MARKER
    try:
        state = json.loads(marker.read_text())
        if not isinstance(state, dict) or not isinstance(state.get("step"), int):
            raise TypeError("no step")
    except (OSError, ValueError, TypeError) as e:
        raise StateError(marker, f"unreadable training state ({e})") from None
    for names in REQUIRED:
        if not any((state_dir / n).is_file() for n in names):
            raise StateError(state_dir, f"incomplete training state: {' or '.join(names)} is missing")
    for path in sorted(state_dir.iterdir()):
        if path.suffix in (".bin", ".pkl", ".pt"):
            _check_weights_only(path)
        elif path.suffix == ".safetensors":
            _check_safetensors(path)


def _check_weights_only(path: Path) -> None:
    import torch

    try:
        with torch.serialization.safe_globals(_safe_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on unusual pickle protocols: the verdict is what counts
            try:
                torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                torch.load(path, map_location="cpu", weights_only=True)  # the legacy (non-zip) format
    except pickle.UnpicklingError as e:
        raise StateError(path, f"refused for safety: {_asked_for(path, str(e))}; a training state holds only "
                               "tensors and plain values, and nothing in this file was run") from None
    except Exception as e:  # noqa: BLE001 - whatever a corrupt file makes torch raise, it is this file's fault
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StateError(path, f"unreadable ({first})") from None


_PLAIN_MODULES = ("torch", "collections", "numpy", "_codecs", "codecs", "builtins")


def _asked_for(path: Path, message: str) -> str:
    """What a refused pickle asks for: the classes and functions it names (read from its opcodes, never run)
    beyond those of tensors and plain values; else what torch's refusal says (never its advice to unsafe-load)."""
    names = [n for n in _pickle_globals(path) if n.split(".")[0] not in _PLAIN_MODULES]
    if names:
        return "it asks for " + ", ".join(dict.fromkeys(names))
    m = re.search(r"GLOBAL\s+([\w.]+)", message)
    return f"it asks for {m.group(1)}" if m else "it holds objects other than tensors and plain values"


def _pickle_globals(path: Path, limit: int = 64 << 20) -> list[str]:
    """``module.name`` of every GLOBAL/STACK_GLOBAL/INST in a pickle (or a torch zip file's ``data.pkl``)."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                member = next((i for i in z.infolist() if i.filename.endswith("data.pkl")), None)
                if member is None or member.file_size > limit:
                    return []
                data = z.read(member)
        else:
            if path.stat().st_size > limit:
                return []
            data = path.read_bytes()
        names, strings = [], []
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
        return names
    except Exception:  # noqa: BLE001 - a malformed pickle: fall back to torch's own words
        return []


def _check_safetensors(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size <= min(path.stat().st_size - 8, 100 << 20):
                raise ValueError("bad header size")
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise TypeError("header is not a mapping")
    except (OSError, ValueError, TypeError) as e:
        raise StateError(path, f"unreadable safetensors file ({e})") from None



def truncate_metrics(path: Path, step: int) -> None:
    """Drop lines logged after the state we resume from (they will be logged again, identically)."""
    if path.is_file():
        keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))
