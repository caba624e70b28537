"""The deployment room: a trained model used outside the harness. :class:`.segmenter.Segmenter` (the
Python API; photos are read by :mod:`seg.data.photos`, as in training), pictures of predictions (:mod:`.pictures`),
what an exported file says about itself (:mod:`.metadata`), and the deployed net with its ONNX /
TorchScript formats (:mod:`.formats`).

Everything but :mod:`.formats` imports without torch, so an ONNX model runs on ONNX Runtime alone.
"""
