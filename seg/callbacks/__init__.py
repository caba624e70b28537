"""What the trainer is handed beside the model: the loggers (:mod:`.loggers`, everything known about
them) and the Lightning callbacks, each listed in ``conf/callbacks/default.yaml``: the EMA
of the weights (:mod:`.ema`), safe stops (:mod:`.stops`), random states in checkpoints
(:mod:`.random_state`) and the pictures for the loggers (:mod:`.images`)."""
