"""Training state folders that survive a kill at any moment.

``run_dir/checkpoints/step_NNNNNN/`` holds Accelerate's state plus ``trainer_state.json``, which is written
last: a folder without it is not a complete state. A save goes to ``.tmp_step_NNNNNN`` and is renamed into
place in one step, so the latest ``step_*`` folder is always complete; leftovers are cleaned up.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from ..errors import WaveflowError


class TrainingError(WaveflowError, RuntimeError):
    """Training cannot go on (diverged, nothing to resume from, a run_dir of another run...)."""


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
    error), ``never`` (``None``; an error if the run has states) or a path to a state folder."""
    states = list_states(checkpoint_dir)
    if resume == "auto":
        return states[-1][1] if states else None
    if resume == "latest":
        if not states:
            raise TrainingError(f"train.resume=latest: no complete training state in {checkpoint_dir}")
        return states[-1][1]
    if resume == "never":
        if states:
            raise TrainingError(
                f"{run_dir} already holds training states (latest {states[-1][1].name}); use "
                "train.resume=auto to continue it, or choose another train.run_dir"
            )
        return None
    path = Path(resume)
    if not (path / STATE_MARKER).is_file():
        raise TrainingError(f"train.resume={resume}: not a complete training state folder")
    return path


def truncate_metrics(path: Path, step: int) -> None:
    """Drop lines logged after the state we resume from (they will be logged again, identically)."""
    if path.is_file():
        keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))
