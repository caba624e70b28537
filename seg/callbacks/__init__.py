"""The Lightning callbacks of a training run, each listed in ``conf/callbacks/default.yaml``: the EMA
of the weights (:mod:`.ema`), safe stops (:mod:`.stops`), random states in checkpoints
(:mod:`.random_state`) and the pictures for the loggers (:mod:`.images`)."""
