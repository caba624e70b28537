"""The fault catalogue of a user's own data, each fault made as a user makes it and run as a user runs
it: ``python -m benchmarks.faults`` (with ``SEG_DATA_URL`` pointing at the MSRC archive).

It trains two tiny models (MSRC, and an 11-class street-scene folder data set written here in the real
on-disk format: PNG photos, index-PNG masks, ``classes.txt``), then runs one command per fault and
records its exit code and the line it ends with. A case is clear when its exit code is the expected one,
no Python traceback was printed, and no file of the data sets or of the other run changed. Writes
``faults.json`` and ``faults.md`` to ``--out`` (default ``outputs/benchmarks/<date>_<time>/``).

The full-disk case runs training in a tmpfs (``mount -t tmpfs``: root) with room for one and a half
checkpoints: the second cannot be written; without the mount the case is reported as not run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import ROOT, default_out, machine, now, write_report

STREET = ("sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car", "pedestrian", "bicyclist")
TINY = [
    "data.crop_size=64",
    "data.batch_size=4",
    "model.net.weights=null",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "callbacks.progress_bar.refresh_rate=0",
]
LOG_PREFIX = re.compile(r"^(\[[^\]]*\])+( - | )")  # Hydra's "[time][logger][LEVEL] - ", "[time][HYDRA] "
SAID = re.compile(r"^(init_from=|match_classes=|data\.cache_dir=)")  # what an exit-0 case is about
ERROR_LINE = re.compile(r"^[A-Za-z]+(Error|Full|Diverged)?: ")


def write_street(root: Path, n: int = 12, seed: int = 0) -> Path:
    """An 11-class data set in the flat layout: 96x64 PNG photos, index masks 0..10 with 11 = unlabelled."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    colours = rng.integers(0, 255, (12, 3))
    for i in range(n):
        ids = np.repeat(rng.integers(0, 11, 4), 24)[None].repeat(64, 0)
        ids[:6] = 11
        photo = colours[ids] + rng.integers(-10, 10, (64, 96, 3))
        Image.fromarray(photo.clip(0, 255).astype(np.uint8)).save(root / "images" / f"{i:04d}.png")
        Image.fromarray(ids.astype(np.uint8)).save(root / "masks" / f"{i:04d}.png")
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in STREET))
    return root


def snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True)


def last_line(proc: subprocess.CompletedProcess) -> str:
    """The error line of a failed run; of one that ran, the line about the setting tried (else its last)."""
    lines = [LOG_PREFIX.sub("", x) for x in proc.stderr.splitlines()]
    found = [i for i, x in enumerate(lines) if ERROR_LINE.match(x) or SAID.search(x)]
    if found:  # a list of problems ("N problems in the data set:") goes on below its first line
        i = found[-1]
        more = [x for x in lines[i + 1 :] if x.strip() and not x.startswith("[")] if lines[i].endswith(":") else []
        return " / ".join([lines[i], *more])
    return next((x for x in reversed((proc.stdout + proc.stderr).splitlines()) if x.strip()), "")


def variant(base: Path, to: Path, change) -> Path:
    shutil.copytree(base, to)
    change(to)
    return to


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = now()
    work = Path(tempfile.mkdtemp(prefix="seg-faults-"))
    data = [f"paths.data_dir={work / 'data'}"]
    street = write_street(work / "street")
    # a few photos: not every class need be in train; the ignore index last (some cases leave it out)
    folder = [*data, "data=folder", f"data.cache_dir={work / 'checks'}", "data.allow_unseen_classes=true"]
    folder.append("data.ignore_index=11")
    msrc_run, street_run = work / "msrc_run", work / "street_run"
    for proc in (
        run("seg.train", *data, *TINY, f"hydra.run.dir={msrc_run}"),
        run("seg.train", *folder, f"data.root={street}", *TINY, f"hydra.run.dir={street_run}"),
    ):
        assert proc.returncode == 0, proc.stderr[-3000:]
    msrc_ckpt, street_ckpt = msrc_run / "checkpoints" / "last.ckpt", street_run / "checkpoints" / "last.ckpt"
    on_street = [*folder, f"data.root={street}"]

    def with_classes(text: str | bytes):
        def change(root: Path) -> None:
            path = root / "classes.txt"
            path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)

        return change

    def colour_masks(root: Path) -> None:
        palette = np.random.default_rng(1).integers(1, 255, (11, 3)).astype(np.uint8)
        for mask in (root / "masks").glob("*.png"):
            ids = np.array(Image.open(mask))
            rgb = palette[np.minimum(ids, 10)]
            rgb[ids == 11] = 0
            Image.fromarray(rgb).save(mask)
        (root / "classes.txt").write_text("".join(f"{c} {r} {g} {b}\n" for c, (r, g, b) in zip(STREET, palette)))

    def jpeg_masks(root: Path) -> None:
        for mask in (root / "masks").glob("*.png"):
            Image.open(mask).save(mask.with_suffix(".jpg"), quality=90)
            mask.unlink()

    def six_photos(root: Path) -> None:  # with split lists: train 4, val 1, test 1
        names = sorted(p.name for p in (root / "images").glob("*.png"))
        for name in names[6:]:
            (root / "images" / name).unlink()
            (root / "masks" / name).unlink()
        for split, part in (("train", names[:4]), ("val", names[4:5]), ("test", names[5:6])):
            (root / f"{split}.txt").write_text("".join(f"{n}\n" for n in part))

    def truncated(root: Path) -> None:
        photo = root / "images" / "0003.png"
        photo.write_bytes(photo.read_bytes()[:300])

    def no_table(root: Path) -> None:
        (root / "classes.txt").unlink()

    v = work / "variants"
    cases = [
        ("seg.eval an MSRC checkpoint on an 11-class data set", "seg.eval", [*on_street, f"ckpt_path={msrc_ckpt}"], 2),
        ("seg.eval an 11-class checkpoint on MSRC", "seg.eval", [*data, f"ckpt_path={street_ckpt}"], 2),
        (
            "the same with match_classes=by_name (a deliberate mapping)",
            "seg.eval",
            [*on_street, f"ckpt_path={msrc_ckpt}", "match_classes=by_name"],
            0,
        ),
        (
            "seg.train ckpt_path= another data set's run checkpoint",
            "seg.train",
            [*on_street, *TINY, f"ckpt_path={msrc_ckpt}", f"hydra.run.dir={work / 'r1'}"],
            2,
        ),
        (
            "seg.train init_from= the same checkpoint (fine-tuning)",
            "seg.train",
            [*on_street, *TINY, f"init_from={msrc_ckpt}", f"hydra.run.dir={work / 'r2'}"],
            0,
        ),
        (
            "seg.export an MSRC checkpoint, verify split of the 11-class data",
            "seg.export",
            [*on_street, f"ckpt_path={msrc_ckpt}", "format=torchscript", f"output={work / 'm.pt'}"],
            2,
        ),
        (
            "data.ignore_index=3 without a classes.txt (ids 0..11)",
            "seg.check",
            [*folder[:-1], f"data.root={variant(street, v / 'ign', no_table)}", "data.ignore_index=3"],
            2,
        ),
        ("paths.output_dir=/proc/x", "seg.train", [*on_street, *TINY, "paths.output_dir=/proc/x"], 2),
        (
            "data.folds=8 on 6 photos (train+val: 5)",
            "seg.check",
            [*folder, f"data.root={variant(street, v / 'six', six_photos)}", "data.folds=8"],
            2,
        ),
        (
            "a truncated photo (header intact)",
            "seg.check",
            [*folder, f"data.root={variant(street, v / 'trunc', truncated)}"],
            2,
        ),
    ]
    for name, text, code in [
        ("classes.txt line 'sky 128 128'", "sky 128 128\n" + "\n".join(STREET[1:]), 2),
        ("classes.txt line 'sky -1 128 128'", "sky -1 128 128\n" + "\n".join(STREET[1:]), 2),
        ("classes.txt naming road twice", "\n".join([*STREET[:-1], "road"]), 2),
        ("classes.txt with a UTF-8 BOM", ("\n".join(STREET) + "\n").encode("utf-8-sig"), 0),
    ]:
        root = variant(street, v / f"table{len(cases)}", with_classes(text))
        cases.append((name, "seg.check", [*folder, f"data.root={root}"], code))
    cases += [
        (
            "colour masks, classes.txt without a void line (12 masks)",
            "seg.check",
            [*folder[:-1], f"data.root={variant(street, v / 'colour', colour_masks)}"],
            2,
        ),
        ("masks saved as .jpg", "seg.check", [*folder, f"data.root={variant(street, v / 'jpg', jpeg_masks)}"], 2),
        (
            "a read-only paths.data_dir with data=folder",
            "seg.check",
            [*folder[1:], "paths.data_dir=/proc/x", f"data.root={street}"],
            0,
        ),
    ]
    tiny_fs = work / "full"
    tiny_fs.mkdir()
    room = int(1.5 * msrc_ckpt.stat().st_size) // 1024  # one checkpoint fits, the second does not
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={room}k", "tmpfs", str(tiny_fs)]).returncode == 0
    if mounted:
        cases.append(
            (
                "a disk with room for 1.5 checkpoints under the run folder",
                "seg.train",
                [*data, *TINY, "trainer.max_epochs=3", f"hydra.run.dir={tiny_fs / 'run'}"],
                2,
            )
        )
    rows = []
    try:
        for k, (name, module, argv, expected) in enumerate(cases):
            before = snapshot(street, msrc_run, street_run)
            if not any(a.startswith("hydra.run.dir=") for a in argv):  # every run's folder inside the work dir
                argv = [*argv, f"hydra.run.dir={work / 'runs' / str(k)}"]
            proc = run(module, *argv)
            untouched = snapshot(street, msrc_run, street_run) == before
            traceback = "Traceback (most recent call last)" in proc.stdout + proc.stderr
            line = last_line(proc).replace(str(work), "…")
            clear = proc.returncode == expected and not traceback and untouched
            rows.append({"fault": name, "command": f"python -m {module}", "exit": proc.returncode, "line": line})
            rows[-1].update(expected=expected, traceback=traceback, untouched=untouched, clear=clear)
            print(f"{'clear' if clear else 'NOT CLEAR'}: {name}: exit {proc.returncode}: {line[:300]}", flush=True)
        if mounted:  # what is left must load
            import torch

            left = sorted((tiny_fs / "run" / "checkpoints").glob("*.ckpt"))
            rows[-1]["checkpoints_left"] = {p.name: torch.load(p, weights_only=True)["epoch"] for p in left}
            rows[-1]["clear"] = rows[-1]["clear"] and bool(left)
            print(f"checkpoints left on the full disk, each loaded: {rows[-1]['checkpoints_left']}")
    finally:
        if mounted:
            subprocess.run(["umount", str(tiny_fs)])
        shutil.rmtree(work, ignore_errors=True)
    info = machine()
    clear = sum(r["clear"] for r in rows)
    lines = [
        f"{len(rows)} faults, one run each, {clear} clear ({started:%Y-%m-%d}, {info['cpu']}, {info['cpu_kind']})"
        + ("" if mounted else "; the full-disk case was not run (mount -t tmpfs failed: needs root)"),
        "",
        "| fault | exit | the line the user sees | clear |",
        "|---|---|---|---|",
    ]
    for r in rows:
        shown = r["line"].replace("|", "\\|")
        lines.append(f"| {r['fault']} | {r['exit']} | {shown} | {'yes' if r['clear'] else 'NO'} |")
    report = {"started": started.isoformat(), "machine": info, "rows": rows, "full_disk_run": mounted}
    write_report(args.out or default_out(started), "faults", report, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
