"""`python -m seg.demo [ckpt_path=PATH | model_file=FILE.onnx | runs=DIR]`: a web page that segments photos.

Served on ``host:port`` (127.0.0.1:7860: this machine only) until Ctrl-C; ``share=true`` adds a public
link, never by default. Photos dropped or picked on the page (any format seg.predict reads, turned
upright by their EXIF orientation) go through :class:`seg.deploy.segmenter.Segmenter` as in
seg.predict; for each the page shows the overlay with a legend of the classes present, the class-id
mask, a table of the classes' pixel shares and the time the prediction took, and offers the palette
PNG and the overlay that seg.predict would write. TTA and the overlay's opacity are controls. Without
a model on the command line, a picker lists the finished runs under ``runs``. A photo that cannot be
segmented gets a message on the page. With ``model_file=*.onnx`` no torch is imported.

The page is Gradio's: the library most published segmentation demos use, with uploads, image panels,
tables, downloads and a request queue (one prediction at a time on a small CPU) as ready parts. Its
telemetry and version check are off: the server calls nothing beyond this machine unless ``share=true``.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from seg.core.errors import ConfigError, SegError
from seg.core.rules import Get, Settings, given, integer, number, shown, switch, text
from seg.model.inference import max_side_problem, tile_overlap_problem, tile_problem, tta_problem
from seg.run.entry import hydra_main, run_job
from seg.run.page import (
    FORMATS,
    Models,
    Shown,
    forget,
    heading_classes,
    messages_text,
    open_models,
    reblend,
    segment_files,
    view,
)
from seg.run.settings import tta_value

log = logging.getLogger(__name__)

# Gradio and the Hugging Face hub client it brings stay offline (their telemetry, version checks)
OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}


class Events:
    """What each event of the page does: photos dropped (or TTA or the model changed), another photo
    picked, the opacity moved. Each returns the new state and what the panels show."""

    def __init__(self, models: Models, tta_on: Any, max_megapixels: float, workdir: Path) -> None:
        self.models, self.tta_on, self.max_megapixels, self.workdir = models, tta_on, max_megapixels, workdir

    def segment(self, previous: list[Shown], files: list[str] | None, tta: bool, alpha: float, choice: str | None):
        import gradio as gr

        forget(previous)
        nothing = gr.update(choices=[], value=None, visible=False)
        if not files:
            return [], nothing, "", *view([], None, None)
        try:
            segmenter = self.models.get(choice).with_tta(self.tta_on if tta else False)
        except SegError as e:  # the picked run's checkpoint cannot be loaded
            return [], nothing, f"- ⚠️ {e}", *view([], None, None)
        folder = Path(tempfile.mkdtemp(dir=self.workdir))
        shown, messages = segment_files(segmenter, files, folder, alpha, self.max_megapixels)
        picker = gr.update(
            choices=[(f"{i + 1}. {s.name}", i) for i, s in enumerate(shown)],
            value=0 if shown else None,
            visible=len(shown) > 1,
        )
        return shown, picker, messages_text(messages, shown), *view(shown, 0, segmenter)

    def select(self, shown: list[Shown], index: int | None, choice: str | None):
        return view(shown, index, self.models.get(choice) if shown else None)

    def opacity(self, shown: list[Shown], alpha: float, index: int | None, choice: str | None):
        import gradio as gr

        if not shown:
            return shown, *view([], None, None)
        segmenter = self.models.get(choice)
        try:
            shown = [reblend(segmenter, s, alpha) for s in shown]
        except SegError as e:  # the uploads were cleaned away meanwhile (Gradio's cache, after an hour)
            raise gr.Error(f"{e}: drop the photos again") from None
        return shown, *view(shown, index or 0, segmenter)


def build_page(models: Models, cfg: DictConfig, workdir: Path) -> Any:
    """The page: its controls, panels and what each event does (a ``gradio.Blocks``)."""
    import gradio as gr

    tta_on = tta_value(cfg.tta) or True  # what the switch turns on: the configured TTA, else the flip
    alpha0 = float(cfg.overlay_alpha)

    events = Events(models, tta_on, float(cfg.max_megapixels), workdir)
    with gr.Blocks(title="seg: semantic segmentation demo", analytics_enabled=False, delete_cache=(600, 3600)) as page:
        gr.Markdown(
            f"## Semantic segmentation\nDrop or pick photos: every pixel gets one of {heading_classes(models.fixed)}."
        )
        shown_state = gr.State([])
        with gr.Row():
            with gr.Column(scale=1):
                if models.fixed is None:
                    run = gr.Dropdown(
                        models.choices(),
                        value=models.choices()[0][1],
                        label="Model: a finished run (date, recipe, test accuracy), newest first",
                        elem_id="run",
                    )
                else:
                    run = gr.State(None)
                    gr.Markdown(f"Model: `{Path(cfg.ckpt_path or cfg.model_file).name}` ({models.fixed.backend})")
                files = gr.File(file_count="multiple", label=f"Photos ({FORMATS})", elem_id="photos")
                tta = gr.Checkbox(
                    bool(tta_value(cfg.tta)),
                    label=f"TTA: average over {'the flip' if tta_on is True else f'scales {list(tta_on)} and flips'}"
                    " (slower)",
                    elem_id="tta",
                )
                alpha = gr.Slider(0, 1, alpha0, step=0.05, label="Overlay opacity", elem_id="opacity")
                messages = gr.Markdown(elem_id="messages")
            with gr.Column(scale=2):
                which = gr.Dropdown([], label="Photo", visible=False, elem_id="which")
                timing = gr.Markdown(elem_id="timing")
                overlay = gr.Image(
                    label="Overlay", type="filepath", interactive=False, buttons=["fullscreen"], elem_id="overlay"
                )
                legend = gr.HTML(elem_id="legend")
                with gr.Row():
                    mask = gr.Image(
                        label="Classes", type="filepath", interactive=False, buttons=["fullscreen"], elem_id="mask"
                    )
                    table = gr.Dataframe(
                        headers=["class", "id", "pixels", "share %"], interactive=False, elem_id="table"
                    )
                downloads = gr.File(
                    label="Downloads: the class ids as a palette PNG, the overlay with its legend",
                    file_count="multiple",
                    interactive=False,
                    elem_id="downloads",
                )
        views = [overlay, legend, mask, table, downloads, timing]
        # one event at a time across every visitor (one concurrency group): each prediction gets the
        # CPU's cores, and the files of a visitor's results change under no other event
        queued = {"concurrency_limit": 1, "concurrency_id": "model"}
        for event in (files.change, tta.input) + ((run.input,) if models.fixed is None else ()):
            event(
                events.segment, [shown_state, files, tta, alpha, run], [shown_state, which, messages, *views], **queued
            )
        which.input(events.select, [shown_state, which, run], views, **queued)
        alpha.release(events.opacity, [shown_state, alpha, which, run], [shown_state, *views], **queued)
    return page.queue()


def serve(page: Any, cfg: DictConfig, workdir: Path) -> str:
    """Start serving ``page`` in the background; its URL."""
    try:
        page.launch(
            server_name=cfg.host,
            server_port=cfg.port,
            share=cfg.share,
            prevent_thread_lock=True,
            quiet=True,
            allowed_paths=[str(workdir)],
            max_file_size=f"{cfg.max_upload_mb}mb",  # a larger upload is refused on the page
            run_history=False,
            mcp_server=False,
            ssr_mode=False,
            footer_links=["api", "settings"],
        )
    except OSError as e:
        where = "the first free port from 7860" if cfg.port is None else f"port={cfg.port}"
        raise ConfigError(
            f"cannot serve on host={cfg.host} with {where} ({e}); pass another port=... (port=null: the first "
            f"free one from 7860) or host=..."
        ) from None
    return page.share_url or page.local_url


def demo(cfg: DictConfig) -> None:
    """Serve the page until Ctrl-C or SIGTERM."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's check that its own server is up, per request
    models = open_models(cfg)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="seg-demo-") as tmp:
        workdir = Path(tmp)
        # Gradio keeps uploads and results in its cache folder: this one goes when the page stops
        before, os.environ["GRADIO_TEMP_DIR"] = os.environ.get("GRADIO_TEMP_DIR"), str(workdir / "gradio")
        page = build_page(models, cfg, workdir)
        url = serve(page, cfg, workdir)
        model = models.fixed.backend if models.fixed else f"{len(models.runs)} runs to pick from"
        log.info(f"Demo page: {url} ({model}; Ctrl-C stops it)")
        if cfg.share or cfg.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning(f"the page is open beyond this machine (host={cfg.host}, share={cfg.share})")
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            page.close()
            if before is None:
                os.environ.pop("GRADIO_TEMP_DIR", None)
            else:
                os.environ["GRADIO_TEMP_DIR"] = before
    log.info("Demo page stopped")


def _at_most_one_model(get: Get, at: str) -> list[str]:
    ckpt, model_file = get("ckpt_path"), get("model_file")
    if given(ckpt) and given(model_file):
        return [
            f"ckpt_path / model_file: pass at most one model (none: pick a run on the page); got "
            f"ckpt_path={shown(ckpt)} model_file={shown(model_file)}"
        ]
    return []


# the keys seg.demo reads
SETTINGS = Settings(
    {
        "host": text,
        "port": integer(1, 65535, null=True, why="null: the first free port from 7860"),
        "share": switch,
        "runs": text,
        "max_megapixels": number(0, above=True),
        "max_upload_mb": integer(1),
        "overlay_alpha": number(0, 1),
        "tta": tta_problem,
        "max_side": max_side_problem,
        "tile": tile_problem,
        "tile_overlap": tile_overlap_problem,
    },
    checks=(_at_most_one_model,),
)


def run(cfg: DictConfig) -> None:
    """What Hydra calls: serve the page."""
    return run_job(cfg, demo, SETTINGS)


main = hydra_main("demo", run)


if __name__ == "__main__":
    main()
