"""The model room: the nets (:mod:`.nets`), the losses (:mod:`.losses`), the LightningModule
(:mod:`.module`), metric maths (:mod:`.metrics`), whole-photo inference with TTA (:mod:`.inference`)
and a trained model from a checkpoint alone (:mod:`.checkpoint`).

Nothing is imported here: :mod:`.inference` stays importable without torch for the deployment API.
"""
