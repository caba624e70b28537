"""seg: semantic segmentation of MSRC-v2 with PyTorch Lightning + Hydra."""

import os
from pathlib import Path

# conf/ interpolates the project root (paths.root_dir); like rootutils in lightning-hydra-template
os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))
