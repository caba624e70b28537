"""The run plumbing the entry points share: the Hydra main and one-line errors of a job (:mod:`.entry`),
the one settings check (:mod:`.settings`), the objects of a run (:mod:`.build`), the precision the
hardware affords (:mod:`.hardware`), resuming in place (:mod:`.resume`), what a run leaves on disk
(:mod:`.results`), the files of a prediction (:mod:`.predictions`), the demo page's work without
Gradio (:mod:`.page`), the sweep summary (:mod:`.sweep`)
and the Optuna sampler (:mod:`.search`)."""
