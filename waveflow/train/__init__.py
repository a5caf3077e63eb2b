"""Training: run config, the Accelerate trainer, datasets, crash-safe state folders, validation, EMA.

Importing this package does not import Accelerate; :mod:`.trainer` does (``pip install "waveflow[train]"``).
"""

from .config import DataConfig, RunConfig, TrainConfig, load_run_config
from .state import TrainingError

__all__ = ["DataConfig", "RunConfig", "TrainConfig", "TrainingError", "load_run_config"]
