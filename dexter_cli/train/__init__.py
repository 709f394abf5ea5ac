"""Training: ``train(cfg)`` runs the loop (:mod:`.loop`) over the parts :mod:`.setup` builds, with
the step's pure functions in :mod:`.schedule`."""

from .loop import Run, TrainingInterrupted, TrainResult, train
from .schedule import batch_indices, ema_decay_at, example_generators, get_lr, step_generator
from .setup import check_finite_store, checkpoint_config, fit_prior, load_init

__all__ = ["Run", "TrainResult", "TrainingInterrupted", "batch_indices", "check_finite_store", "checkpoint_config",
           "ema_decay_at", "example_generators", "fit_prior", "get_lr", "load_init", "step_generator", "train"]
