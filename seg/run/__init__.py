"""The run plumbing the entry points share: one-line errors and the Hydra main (:mod:`.cli`), every
setting's check (:mod:`.settings`), the objects of a run (:mod:`.build`), the precision the hardware
affords (:mod:`.hardware`), resuming in place (:mod:`.resume`), files written atomically
(:mod:`.files`), what a run leaves on disk (:mod:`.results`), the files of a prediction
(:mod:`.predictions`) and the sweep summary (:mod:`.sweep`)."""
