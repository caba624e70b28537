"""Any data set in folders: :class:`FolderDataModule` (the layouts of :mod:`seg.data.folder`, masks of
every kind, classes from ``classes`` / ``classes.txt`` / the masks), surveyed and checked before use."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import fields
from typing import Any, ClassVar

from seg.core.errors import ConfigError
from seg.core.rules import ABSENT, Get, Settings, given, integer, is_number, one_of, switch
from seg.data.coco import CROWD
from seg.data.datamodule import DataCheckError, SegDataModule
from seg.data.dataset import Reader
from seg.data.folder import Catalogue, FolderReader, Layout
from seg.data.formats import FORMATS, read_catalogue
from seg.data.labels import LabelSet
from seg.data.recipe import AUTO, auto_or, recipe
from seg.data.survey import Survey, report, survey

log = logging.getLogger(__name__)


def _names(v: Any) -> str | None:
    ok = v is None or (isinstance(v, list) and v and all(isinstance(x, str) and x for x in v))
    return None if ok else "must be a list of class names (index = class id), or null"


def _fractions(v: Any) -> str | None:
    ok = isinstance(v, list) and len(v) == 3 and all(is_number(x) and x >= 0 for x in v) and v[0] > 0 and v[1] > 0
    return None if ok else "must be three shares [train, val, test] >= 0, train and val > 0, e.g. [0.8, 0.1, 0.1]"


def _root(get: Get, at: str) -> list[str]:
    if get("root") is ABSENT or given(get("root")):
        return []
    return [f"{at}root: pass the folder of your data set, e.g. python -m seg.train data=folder data.root=DIR"]


AUTO_KEYS = ("crop_size", "batch_size", "augment_scale")  # the loader keys that may be auto


class FolderDataModule(SegDataModule):
    """Any data set in folders (:mod:`seg.data.folder`: flat, Pascal VOC, or one folder pair per split), its
    classes from ``classes`` / ``classes.txt`` / the masks, checked before use (:mod:`seg.data.survey`,
    cached in ``cache_dir``): a problem stops the run with one line per problem."""

    SETTINGS: ClassVar[Settings] = SegDataModule.SETTINGS | Settings(
        {
            # auto: chosen from the training photos' sizes (seg.data.recipe)
            **{k: auto_or(SegDataModule.SETTINGS.rules[k]) for k in AUTO_KEYS},
            "ignore_index": integer(null=True),
            "binary_threshold": integer(1, 255, null=True),
            "format": one_of(*FORMATS),
            "coco_crowd": one_of(*CROWD),
            "classes": _names,
            "split_fractions": _fractions,
            "split_seed": integer(),
            "allow_unseen_classes": switch,
        },
        checks=(_root,),
    )

    def __init__(
        self,
        root: str,
        classes: Sequence[str] | None = None,
        ignore_index: int | None = None,
        allow_unseen_classes: bool = False,
        cache_dir: str | None = None,
        binary_threshold: int | None = None,
        **settings: Any,
    ) -> None:
        """``settings``: the layout (:class:`seg.data.folder.Layout`: images, masks, mask_suffix, splits_dir,
        split_fractions, split_seed, train/val/test) and :class:`SegDataModule`'s; training augments by
        default, and val and test score whole photos, one per batch, unless ``eval_crop_size`` /
        ``eval_batch_size`` say otherwise."""
        self.layout = Layout.of(settings)
        super().__init__(**{"eval_batch_size": 1, **settings})
        self.hparams.update({f.name: getattr(self.layout, f.name) for f in fields(Layout)})
        self.hparams.classes = [str(c) for c in classes] if classes else None
        self._catalogue: Catalogue | None = None
        self._survey: Survey | None = None

    @property
    def catalogue(self) -> Catalogue:
        """The items of each split as the layout settings find them (looked up once)."""
        if self._catalogue is None:
            hp = self.hparams
            ignore = 255 if hp.ignore_index is None else hp.ignore_index
            self._catalogue = read_catalogue(hp.root, self.layout, hp.cache_dir, ignore)
        return self._catalogue

    def survey(self) -> Survey:
        """The data set's survey (read once, cached on disk): every split's statistics and problems."""
        if self._survey is None:
            hp = self.hparams
            args = (hp.root, hp.classes, hp.ignore_index, hp.allow_unseen_classes, hp.cache_dir, hp.binary_threshold)
            self._survey = survey(self.catalogue, *args)
        return self._survey

    def label_set(self) -> LabelSet:
        return self.survey().label_set

    @property
    def reader(self) -> Reader:
        return FolderReader(self.label_set(), self.survey().binary)

    def prepare_data(self) -> None:
        """Check the data set before any work: a problem is an error naming its file. Then the settings
        left ``auto`` are chosen from the photo sizes (logged)."""
        found = self.survey()
        for note in found.notes:
            log.warning(note)
        if not found.problems and (why := self.fold_count_problem()):
            raise ConfigError(why)
        if found.problems:
            lines = "\n".join(found.problems[:50])
            if len(found.problems) > 50:
                lines += f"\n... and {len(found.problems) - 50} more"
            raise DataCheckError(
                f"{len(found.problems)} problems in the data set at {self.hparams.root} "
                f"(python -m seg.check shows them all with the class table):\n{lines}"
            )
        self.choose_recipe()

    def choose_recipe(self) -> None:
        """``crop_size``, ``batch_size`` and ``augment_scale`` left ``auto``: set by :func:`seg.data.recipe.recipe`
        from the training split's photo sizes, logged with the rule's reasons."""
        auto = [k for k in AUTO_KEYS if self.hparams.get(k) == AUTO]
        if not auto:
            return
        chosen = recipe(self.survey().splits["train"].sizes)
        for key in auto:
            self.hparams[key] = getattr(chosen, key)
        log.info(
            f"data: {', '.join(f'{k}={self.hparams[k]}' for k in auto)} (auto): {chosen.why}; "
            f"set any of them to override"
        )

    def setup(self, stage: str | None = None) -> None:
        self.choose_recipe()  # on every process (prepare_data runs on one)
        super().setup(stage)

    def split_items(self, split: str) -> list[Hashable]:
        return list(self.catalogue.splits[split])

    def decoded_bytes(self) -> int:
        """RGB photos and masks of every split at their own size (the survey knows the sizes): 4 bytes a pixel."""
        sizes = ([*size.split("x"), n] for st in self.survey().splits.values() for size, n in st.sizes.items())
        return sum(4 * int(w) * int(h) * n for w, h, n in sizes)

    def classes_of(self, items: Mapping[str, Hashable]) -> dict[str, list[int]]:
        known = self.survey().classes_of
        return {n: known[n] for n in items} if all(n in known for n in items) else super().classes_of(items)

    def summary(self) -> str:
        """The survey as text (what python -m seg.check prints)."""
        return report(self.survey())
