"""Labelling tools' exports read as they are: LabelMe (equal to LabelMe's own conversion), COCO (polygons,
RLE, crowds, overlaps), CVAT / Pascal VOC, binary and lossy masks; detection; the drawn masks' cache;
every bad case one line naming its file; seg.convert's folder read back unchanged."""

from __future__ import annotations

import json
import shutil

import numpy as np
import PIL
import pytest
from exports import (
    CLASSES,
    LABELMAP,
    SIZES,
    labelme_ids,
    scene,
    write_binary,
    write_coco,
    write_coco_panoptic,
    write_cvat_masks,
    write_labelme,
)
from PIL import Image

from seg.core.errors import ConfigError
from seg.data import labelme
from seg.data.datamodule import DataCheckError
from seg.data.folder import Layout
from seg.data.folder_data import FolderDataModule
from seg.data.formats import detect, read_catalogue
from seg.data.labels import default_palette

from helpers import CROP, ROOT

LABELLED = ROOT.parent / "shared" / "data" / "labelled"  # real exports, where CI lays ../shared out


@pytest.fixture(scope="module")
def labelled():
    if not (LABELLED / "labelme" / "labels.txt").is_file():
        pytest.fail(f"{LABELLED}: the real labelling-tool exports of ../shared/data/labelled are missing")
    return LABELLED


def module(root, tmp_path, **kwargs) -> FolderDataModule:
    """A folder data module on ``root``; 6 photos split 3/2/1 (the default shares leave val empty)."""
    kwargs = {"split_fractions": [0.5, 0.25, 0.25], **kwargs}
    return FolderDataModule(str(root), crop_size=CROP, cache_dir=str(tmp_path / "checks"), **kwargs)


def every_item(cat):
    return {i.name: i for items in cat.splits.values() for i in items}


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


# ---------------------------------------------------------------------------------- real exports ------


def test_labelme_example_reads_as_labelmes_own_voc_conversion(labelled, tmp_path):
    """LabelMe's example with its labels.txt equals LabelMe's own conversion (labelme2voc) pixel for
    pixel, where the Pillow that draws is one that drew it (9.5 .. 11.0). Pillow 11.1 on changed how a
    polygon's vertex pixels are filled: then at most a pixel or two of the 3 photos' 482,000 differ,
    each beside a polygon vertex."""
    root = labelled / "labelme"
    cat = read_catalogue(root, Layout(), cache_dir=tmp_path / "cache")
    assert cat.format == "labelme" and cat.problems == []
    voc = root / "data_dataset_voc"
    assert list(cat.labels.names) == voc.joinpath("class_names.txt").read_text().split("\n")[: cat.labels.num_classes]
    items = every_item(cat)
    assert sorted(items) == ["2011_000003", "2011_000006", "2011_000025"]
    differ = []
    for name, item in items.items():
        ours = np.array(Image.open(item.mask))
        theirs = np.array(Image.open(voc / "SegmentationClass" / f"{name}.png"))
        npy = np.load(voc / "SegmentationClassNpy" / f"{name}.npy")
        assert ours.shape == theirs.shape and np.array_equal(theirs == 255, npy == -1)
        assert (ours == 255).sum() > 0 or name == "2011_000025"  # two photos have an __ignore__ shape
        vertices = np.array(
            [
                p
                for s in json.loads((root / "data_annotated" / f"{name}.json").read_text())["shapes"]
                for p in s["points"]
            ]
        )
        for y, x in np.argwhere(ours != theirs):
            differ.append(float(np.hypot(vertices[:, 0] - x, vertices[:, 1] - y).min()))
    version = tuple(int(v) for v in PIL.__version__.split(".")[:2])
    if (9, 5) <= version <= (11, 0):
        assert differ == []
    assert len(differ) <= 2 and all(d < 1.5 for d in differ), differ


def test_coco_exports_of_labelme_and_cvat_read_with_their_categories(labelled, tmp_path):
    lm = read_catalogue(labelled / "coco" / "labelme_example", Layout(), cache_dir=tmp_path / "cache")
    names = (labelled / "labelme" / "data_dataset_voc" / "class_names.txt").read_text().split()
    assert lm.format == "coco" and lm.labels.names[0] == "_background_" and len(lm.labels.names) == 21
    assert lm.labels.names[15] == names[15] == "person"
    # the same polygons, drawn by pycocotools instead of Pillow: the same classes on >= 99% of the pixels
    voc = labelled / "labelme" / "data_dataset_voc" / "SegmentationClass"
    for name, item in every_item(lm).items():
        ours, theirs = np.array(Image.open(item.mask)), np.array(Image.open(voc / f"{name}.png"))
        kept = theirs != 255
        assert (ours[kept] == theirs[kept]).mean() > 0.99
    cvat = read_catalogue(labelled / "coco" / "cvat_coco", Layout(), cache_dir=tmp_path / "cache")
    assert cvat.labels.names[0] == "background" and cvat.labels.names[1] == "AC Climate Control Block"
    assert len(cvat.labels.names) == 24 and len(every_item(cvat)) == 6 and cvat.problems == []
    assert "categories never used by an annotation: AC Climate Control Block" in cvat.notes[0]
    assert not (cvat.labels.palette == 0).all(axis=1).any()  # COCO has no colours: none painted black


# ---------------------------------------------------------------------------------- each format -------


def test_labelme_shapes_embedded_photos_and_classes_from_the_jsons(tmp_path):
    root = write_labelme(tmp_path / "lm", labels_txt=False, embed=(1,))
    before = snapshot(root)
    dm = module(root, tmp_path)
    dm.prepare_data()
    assert dm.label_set().names == ("_background_", "car", "road", "sky")  # sorted, written into the run
    order = {"_background_": 0, "sky": 3, "road": 2, "car": 1}
    for name, item in every_item(dm.catalogue).items():
        i = int(name[-3:])
        expected = labelme_ids(i)
        remap = np.array([0, order["sky"], order["road"], order["car"]])
        expected = np.where(expected == 255, 255, remap[np.minimum(expected, 3)])
        assert np.array_equal(np.array(Image.open(item.mask)), expected), name
        photo, _ = dm.reader(item)
        assert np.array_equal(photo, scene(i, *SIZES[i % len(SIZES)])[0])  # the embedded one too
    assert snapshot(root) == before  # nothing written into the data


def test_labelme_problems_name_the_json_and_the_shape(tmp_path, capsys):
    from helpers import run_module

    root = write_labelme(tmp_path / "lm")
    doc = json.loads((root / "photo_000.json").read_text())
    doc["shapes"][0]["label"] = "skyy"
    doc["shapes"][1]["points"] = [[500, 500], [600, 500], [600, 600]]
    (root / "photo_000.json").write_text(json.dumps(doc))
    empty = json.loads((root / "photo_001.json").read_text()) | {"shapes": []}
    (root / "photo_001.json").write_text(json.dumps(empty))
    doc = json.loads((root / "photo_003.json").read_text())
    doc["shapes"][1]["points"] = doc["shapes"][1]["points"][:2]
    (root / "photo_003.json").write_text(json.dumps(doc))
    (root / "photo_002.png").unlink()
    before = snapshot(root)
    run_dir = f"hydra.run.dir={tmp_path / 'check'}"
    proc = run_module(
        "seg.check", "data=folder", f"data.root={root}", f"paths.data_dir={tmp_path}", run_dir, check=False
    )
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert f"{root / 'photo_000.json'}: shape 0 has the label 'skyy', not in {root / 'labels.txt'}" in out
    assert f"{root / 'photo_000.json'}: shape 1 (road) lies outside the 64x48 photo" in out
    empty_note = "1 JSON(s) without shapes that cover pixels, drawn as all _background_, e.g. "
    assert empty_note + str(root / "photo_001.json") in out  # a note: a photo of background only is real data
    assert f"{root / 'photo_003.json'}: shape 1 (road) is a polygon of 2 points (needs 3): it covers no pixels" in out
    assert f"{root / 'photo_002.json'}: its photo {root / 'photo_002.png'} is missing" in out
    assert "Traceback" not in out and snapshot(root) == before


def test_coco_polygons_rle_overlaps_and_crowds(tmp_path):
    from pycocotools import mask as coco_mask

    root = write_coco(tmp_path / "coco", rle=(2,))
    path = root / "annotations" / "instances_default.json"
    doc = json.loads(path.read_text())
    w, h = SIZES[0]
    # photo 0: an uncompressed RLE crowd of cars over the whole photo, and a small road box in the sky
    whole = np.ones((h, w), np.uint8)
    counts = coco_mask.encode(np.asfortranarray(whole))
    uncompressed = {"size": [h, w], "counts": [0, h * w]}
    assert coco_mask.decode(coco_mask.frPyObjects(uncompressed, h, w)).all() and counts["size"] == [h, w]
    box = [[2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0]]
    doc["annotations"] += [
        {"id": 900, "image_id": 1, "category_id": 3, "segmentation": uncompressed, "area": h * w, "iscrowd": 1},
        {"id": 901, "image_id": 1, "category_id": 2, "segmentation": box, "area": 16.0, "iscrowd": 0},
    ]
    path.write_text(json.dumps(doc))
    cat = read_catalogue(root, Layout(), cache_dir=tmp_path / "cache")
    assert cat.labels.names == ("background", *CLASSES) and cat.problems == []
    items = every_item(cat)
    for name, item in items.items():
        i = int(name[-3:])
        ids = np.array(Image.open(item.mask))
        if i == 0:  # the crowd covers everything but the smaller annotations drawn over it; the box on top
            assert (ids[2:6, 2:6] == 2).all() and set(np.unique(ids)) == {1, 2, 3}
        else:
            assert np.array_equal(ids, scene(i, *SIZES[i % len(SIZES)])[1]), name  # RLE (photo 2) too
    ignore = read_catalogue(root, Layout(coco_crowd="ignore"), cache_dir=tmp_path / "cache")
    ids = np.array(Image.open(every_item(ignore)["photo_000"].mask))
    assert (ids[2:6, 2:6] == 2).all() and set(np.unique(ids)) == {1, 2, 3, 255}


def test_coco_panoptic_segments_read_as_their_categories(tmp_path):
    root = write_coco_panoptic(tmp_path / "panoptic")
    cat = read_catalogue(root, Layout(), cache_dir=tmp_path / "cache")
    assert cat.format == "coco" and cat.problems == [] and cat.labels.names == ("background", *CLASSES)
    for name, item in every_item(cat).items():
        i = int(name[-3:])
        assert np.array_equal(np.array(Image.open(item.mask)), scene(i, *SIZES[i % len(SIZES)])[1]), name
    (root / "annotations" / "panoptic_default" / "photo_001.png").unlink()
    missing = read_catalogue(root, Layout(), cache_dir=tmp_path / "cache")
    assert any("annotation 1's panoptic PNG" in p and "photo_001.png is missing" in p for p in missing.problems)


def test_coco_problems_name_the_file_and_the_annotation(tmp_path):
    root = write_coco(tmp_path / "coco")
    path = root / "annotations" / "instances_default.json"
    doc = json.loads(path.read_text())
    doc["annotations"][0]["category_id"] = 42
    doc["annotations"][1]["segmentation"] = []
    doc["annotations"][2]["segmentation"] = [[0.0, 0.0, 900.0, 0.0, 900.0, 900.0]]
    doc["annotations"][3]["image_id"] = 77
    doc["categories"].append({"id": 9, "name": "boat", "supercategory": ""})
    path.write_text(json.dumps(doc))
    (root / "images" / "photo_005.png").unlink()
    cat = read_catalogue(root, Layout(), cache_dir=tmp_path / "cache")
    assert f"{path}: annotation 0 has category_id 42, not in 'categories'" in cat.problems
    assert f"{path}: annotation 1 (photo_000.png) has an empty segmentation" in cat.problems
    assert any(
        p.startswith(f"{path}: annotation 2 (photo_000.png) has a polygon outside the 64x48") for p in cat.problems
    )
    assert f"{path}: annotation 3 belongs to image_id 77, not in 'images'" in cat.problems
    assert f"{path}: the photo of image 6, {root / 'images' / 'photo_005.png'}, is missing" in cat.problems
    assert any("categories never used by an annotation: boat" in n for n in cat.notes)


def test_cvat_segmentation_masks_read_with_the_labelmap_and_default_list(tmp_path):
    root = write_cvat_masks(tmp_path / "cvat")
    assert detect(root)[0] == "voc"
    dm = module(root, tmp_path)
    dm.prepare_data()
    labels = dm.label_set()
    assert labels.names == tuple(LABELMAP) and labels.palette.tolist() == [list(c) for c in LABELMAP.values()]
    assert dm.survey().how.endswith(f"the pool listed in {root / 'ImageSets' / 'Segmentation' / 'default.txt'}")
    assert sum(len(v) for v in dm.catalogue.splits.values()) == 6
    for name, item in every_item(dm.catalogue).items():
        i = int(name[-6:])
        assert np.array_equal(dm.reader(item)[1], scene(i, *SIZES[i % len(SIZES)])[1])


def test_binary_masks_are_two_classes_unless_255_is_said_to_be_ignored(tmp_path):
    for values in ((0, 255), (0, 1)):
        root = write_binary(tmp_path / f"bin{values[1]}", values=values)
        dm = module(root, tmp_path)
        dm.prepare_data()
        assert dm.label_set().names == ("background", "foreground")
        item = every_item(dm.catalogue)["photo_000"]
        assert np.array_equal(dm.reader(item)[1], (scene(0, *SIZES[0])[1] == 3).astype(int))
    (root := tmp_path / "bin255").joinpath("classes.txt").write_text("sea\nship\n")
    assert module(root, tmp_path).label_set().names == ("sea", "ship")
    said = module(tmp_path / "bin255", tmp_path, ignore_index=255)
    with pytest.raises(DataCheckError, match="classes that never occur in the train split: ship"):
        said.prepare_data()


def test_lossy_jpeg_masks_are_named_and_a_threshold_reads_them(tmp_path):
    root = write_binary(tmp_path / "jpeg", suffix=".jpg")
    with pytest.raises(DataCheckError) as e:
        module(root, tmp_path).prepare_data()
    line = next(p for p in str(e.value).splitlines() if "a mask saved as lossy JPEG in" in p)  # one line for all
    assert "photo_00" in line and "distinct values" in line and "neither 0 nor 255" in line
    assert "data.binary_threshold=128" in line
    dm = module(root, tmp_path, binary_threshold=128)
    dm.prepare_data()
    truth = scene(0, *SIZES[0])[1] == 3
    assert dm.label_set().num_classes == 2
    assert (dm.reader(every_item(dm.catalogue)["photo_000"])[1] == truth).mean() > 0.99


def test_a_photo_a_whole_scale_larger_than_its_mask_is_named_with_both_sizes(tmp_path):
    root = write_binary(tmp_path / "scaled")
    photo = root / "images" / "photo_000.png"
    Image.open(photo).resize((128, 96)).save(photo)
    with pytest.raises(
        DataCheckError,
        match=r"size 64x48 differs from its photo .*photo_000.png \(128x96\): the "
        r"photo is 2x its mask \(same aspect\)",
    ):
        module(root, tmp_path).prepare_data()


def test_a_folder_with_two_exports_asks_for_data_format(tmp_path):
    root = write_labelme(tmp_path / "both")
    write_coco(tmp_path / "coco")
    shutil.copytree(tmp_path / "coco" / "annotations", root / "annotations")
    both = r"coco \(annotations/instances_default.json\); labelme \(photo_000.json and 5 more\)"
    with pytest.raises(ConfigError, match=rf"more than one kind of export: {both}; name .* data.format=coco\|labelme"):
        detect(root)
    assert read_catalogue(root, Layout(format="labelme"), tmp_path / "c").format == "labelme"


def test_detection_reads_the_head_of_large_jsons_and_ignores_other_jsons(tmp_path):
    from seg.data.formats import SNIFF

    root = write_labelme(tmp_path / "lm", n=2)
    doc = json.loads((root / "photo_000.json").read_text())
    doc["shapes"] += [doc["shapes"][2]] * 400  # a large annotation: told by its first bytes, not parsed
    (root / "photo_000.json").write_text(json.dumps(doc, indent=2))
    assert (root / "photo_000.json").stat().st_size > SNIFF
    (root / "settings.json").write_text(json.dumps({"images": "not a list", "theme": "dark"}))  # not an export
    assert detect(root)[0] == "labelme"
    assert "photo_000.json and 1 more" in detect(root)[1]


def test_drawn_masks_are_cached_by_the_annotation_files(tmp_path, monkeypatch):
    root = write_labelme(tmp_path / "lm")
    first = read_catalogue(root, Layout(), cache_dir=tmp_path / "cache")
    monkeypatch.setattr(labelme, "draw", lambda *a: pytest.fail("drawn again"))
    again = read_catalogue(root, Layout(), cache_dir=tmp_path / "cache")
    assert every_item(again) == every_item(first)
    monkeypatch.undo()
    (root / "photo_000.json").write_text((root / "photo_000.json").read_text().replace('"car"', '"road"'))
    changed = read_catalogue(root, Layout(), cache_dir=tmp_path / "cache")
    assert every_item(changed)["photo_000"].mask != every_item(first)["photo_000"].mask
    assert len(list((tmp_path / "cache").glob("drawn-labelme-*"))) == 2


def test_the_default_palette_paints_no_class_black():
    assert not (default_palette(256) == 0).all(axis=1).any()


# ---------------------------------------------------------------------------------- seg.convert -------


def test_convert_writes_a_folder_that_reads_back_the_same(tmp_path):
    from seg.convert import convert

    from helpers import compose_config

    root = write_coco(tmp_path / "coco")
    out = tmp_path / "out"
    data = ["data=folder", f"data.root={root}", f"data.cache_dir={tmp_path / 'checks'}", f"paths.data_dir={tmp_path}"]
    data.append("data.split_fractions=[0.5,0.25,0.25]")
    counts = convert(compose_config("convert", *data, f"output={out}", f"paths.output_dir={tmp_path / 'run'}"))
    assert sum(counts.values()) == 6 and (out / "classes.txt").read_text().splitlines()[1].startswith("sky ")
    back = module(out, tmp_path)
    back.prepare_data()
    source = module(root, tmp_path)
    assert back.label_set().names == source.label_set().names
    assert back.label_set().palette.tolist() == source.label_set().palette.tolist()
    for split in ("train", "val", "test"):
        assert [i.name for i in back.catalogue.splits[split]] == [i.name for i in source.catalogue.splits[split]]
    item, theirs = every_item(back.catalogue)["photo_003"], every_item(source.catalogue)["photo_003"]
    assert np.array_equal(back.reader(item)[1], source.reader(theirs)[1])
    assert np.array_equal(back.reader(item)[0], source.reader(theirs)[0])
    with pytest.raises(ConfigError, match="exists and is not empty"):
        convert(compose_config("convert", *data, f"output={out}", f"paths.output_dir={tmp_path / 'run2'}"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temporary left behind


# ---------------------------------------------------------------------------------- end to end --------

WRITERS = {
    "labelme": (write_labelme, ("_background_", *CLASSES)),
    "coco": (write_coco, ("background", *CLASSES)),
    "cvat": (write_cvat_masks, tuple(LABELMAP)),
    "binary": (write_binary, ("background", "foreground")),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_each_export_trains_evaluates_predicts_and_exports_with_its_class_names(kind, tmp_path):
    from seg.deploy.formats import load_deploy_net
    from seg.eval import evaluate
    from seg.model.checkpoint import load_model
    from seg.predict import predict
    from seg.train import train

    from helpers import compose_config, read_csv

    write, names = WRITERS[kind]
    root = write(tmp_path / kind)
    data = ["data=folder", f"data.root={root}", f"data.crop_size={CROP}", "data.batch_size=2"]
    data += ["data.split_fractions=[0.5,0.25,0.25]", f"data.cache_dir={tmp_path / 'checks'}"]
    data += [f"paths.data_dir={tmp_path / 'data'}"]
    run = tmp_path / "run"
    common = ["model.net.weights=null", "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0"]
    train(compose_config("train", *data, *common, "trainer.max_epochs=1", f"paths.output_dir={run}"))
    assert (run / "splits" / "classes.txt").read_text().split("\n")[0].startswith(f"{names[0]} ")
    ckpt = run / "checkpoints" / "last.ckpt"
    model, _ = load_model(ckpt)
    assert model.label_set.names == names
    metrics = evaluate(compose_config("eval", *data, f"ckpt_path={ckpt}", f"paths.output_dir={tmp_path / 'eval'}"))
    assert [c["name"] for c in metrics["per_class"]] == list(names)
    _, metadata = load_deploy_net(ckpt)
    assert json.loads(metadata["seg.class_names"]) == list(names)
    photos = sorted(p for p in root.rglob("*") if p.suffix in (".png", ".jpg") and "Segmentation" not in str(p))
    photos = [p for p in photos if p.parent.name not in ("masks",)]
    out = tmp_path / "predicted"
    predict(compose_config("predict", f"ckpt_path={ckpt}", f"input={photos[0]}", f"output={out}"))
    found = {c.split(":")[0] for row in read_csv(out / "predictions.csv") for c in row["classes"].split(";")}
    assert found and found <= set(names)


def test_an_unwritable_cache_for_drawn_masks_is_one_line(tmp_path):
    root = write_labelme(tmp_path / "lm", n=2)
    before = snapshot(root)
    with pytest.raises(ConfigError, match=r"data.cache_dir=/proc/x: cannot write the masks drawn from the labelme"):
        read_catalogue(root, Layout(), cache_dir="/proc/x")
    assert snapshot(root) == before  # nothing written into the data
