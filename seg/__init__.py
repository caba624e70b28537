"""seg: semantic segmentation of MSRC-v2 with PyTorch Lightning + Hydra."""

import os
from pathlib import Path

# conf/ interpolates the project root (paths.root_dir); like rootutils in lightning-hydra-template
os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))


def __getattr__(name: str) -> type:
    # `from seg import Segmenter` without importing torch, Lightning or Hydra for `import seg.data.labels`
    if name == "Segmenter":
        from seg.deploy.segmenter import Segmenter

        return Segmenter
    raise AttributeError(f"module 'seg' has no attribute {name!r}")
