"""The sampler of ``hparams_search=optuna``: Optuna's TPE with a fixed seed whose random stream goes on
where a stored study left off.

With a seeded ``TPESampler``, running the same search again on a stored study
(``hydra.sweeper.storage=sqlite:///...``) restarts the random stream: its first trials repeat the
parameters of the first sweep's. Here the stream of a sweep is seeded by ``seed`` plus the number of
trials the study already holds, so a fresh study is exactly the seeded TPE, and a continued one is
reproducible too but proposes new points.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.samplers import RandomSampler, TPESampler


class ContinuingTPESampler(TPESampler):
    """:class:`optuna.samplers.TPESampler` whose seeded stream continues a stored study (see above)."""

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self._base_seed, self._continued = seed, False

    def _continue(self, trial: Any) -> None:
        if self._continued:
            return
        self._continued = True
        if self._base_seed is not None and trial.number > 0:  # trials numbered before this one: a stored study
            seed = self._base_seed + trial.number
            self._rng = np.random.RandomState(seed)
            self._random_sampler = RandomSampler(seed=seed)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict:
        self._continue(trial)
        return super().infer_relative_search_space(study, trial)

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        self._continue(trial)
        return super().sample_independent(study, trial, param_name, param_distribution)
