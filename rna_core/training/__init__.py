"""Training: ``train`` (``run``: setup, resume, final evaluation), the loop (``loop.fit``) over a run state
(``state``) with its callbacks (``callbacks``: divergence, progress, logging, checkpoints)."""

from .run import RESUMABLE_CHANGES, TrainResult, default_run_dir, initialise_from, train
from .state import STREAMS, RunState, TrainingDiverged

__all__ = ["RESUMABLE_CHANGES", "STREAMS", "RunState", "TrainResult", "TrainingDiverged", "default_run_dir",
           "initialise_from", "train"]
