"""The data room: label sets (:mod:`.labels`), split lists (:mod:`.splits`), the MSRC archive on disk
(:mod:`.archive`), the presets (:mod:`.transforms`), one split as a Dataset (:mod:`.dataset`), the
epoch sampler (:mod:`.sampling`) and the LightningDataModule (:mod:`.datamodule`).

Nothing is imported here, so that ``seg.data.labels`` and ``seg.data.splits`` stay NumPy-only for
the deployment API; import from the modules themselves.
"""
