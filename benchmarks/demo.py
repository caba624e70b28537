"""The demo page in a real browser: ``python -m benchmarks.demo --ckpt CKPT --onnx FILE [--screenshot PNG]``.

Times what a visitor of ``python -m seg.demo`` waits for: from handing photos to the page's upload
field until the overlay is on screen (uploaded, segmented, pictures made, sent, decoded), for each
photo size (default 320x213, MSRC's common size, and 1024x768) through each model: the checkpoint
(PyTorch) and its ONNX export (ONNX Runtime). Both pages are served at once, each by its own
``seg.demo`` process, and driven by one headless Chromium of the system packages through Playwright
(nothing is downloaded). The paths alternate within each of ``--rounds`` rounds (the order flipping
every round, one untimed upload of each size first); the ratio is the median of the per-round
ratios. The page's own figures are read off it too: the server's work (reading the photo,
predicting, making the pictures) and the prediction alone (``Segmenter.predict``).

``--screenshot PNG`` also saves the page of the checkpoint's run (``seg.demo runs=RUN_DIR``: its
picker lists the run) after predicting ``--photo``: the README's picture.
Writes ``demo.json`` and ``demo.md`` to ``--out`` (default ``outputs/benchmarks/<date>_<time>/``).

The browser helpers here (:func:`chromium`, :class:`DemoServer`, :func:`upload`) also drive the page
in ``tests/test_demo.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import ROOT, default_out, now, write_report
from benchmarks.infer import parse_size, photo

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium package (`apt-get install chromium`)
# quiet on the network: without these Chromium calls home for updates, sync, field trials and safe
# browsing (Playwright adds --headless, and a fresh temporary profile, --user-data-dir, itself)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--metrics-recording-only",
    "--no-pings",
]
OVERLAY_LOADED = (
    "() => { const i = document.querySelector('#overlay img'); return !!i && i.complete && i.naturalWidth > 0; }"
)
URL_LINE = re.compile(r"Demo page: (http://\S+)")


@contextmanager
def chromium(executable: str = CHROMIUM) -> Iterator[Any]:
    """A headless Chromium (the system's: nothing is downloaded) under Playwright; closed on exit."""
    from playwright.sync_api import sync_playwright

    if not Path(executable).is_file():
        raise FileNotFoundError(f"{executable} not found: install it with apt-get install -y chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DemoServer:
    """``python -m seg.demo ARGS`` (or another ``command``) in a process of its own on a free local
    port: :attr:`url` once the page is served, everything it printed when :meth:`stop` ends it."""

    def __init__(
        self, *args: str, command: list[str] | None = None, env: dict | None = None, timeout: float = 180
    ) -> None:
        self.port = free_port()
        cmd = (command or [sys.executable, "-m", "seg.demo"]) + [*args, f"port={self.port}"]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or not self.url:
            self.stop()
            raise RuntimeError(f"seg.demo did not serve within {timeout:.0f} s:\n{self.output[-5000:]}")

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if not self.url and (m := URL_LINE.search(line)):
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()  # the process ended (before serving, if url is still empty)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (what a service manager sends), then wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def clear(page: Any) -> None:
    """Empty the page's photo field (its results go with it)."""
    button = page.locator("#photos button[aria-label='Clear']")
    if button.count():
        button.first.click()
        page.wait_for_selector("#overlay img", state="detached")


def upload(page: Any, files: list[Path], message: str | None = None, timeout_s: float = 120) -> float:
    """Give the page's photo field ``files`` (after emptying it) and wait for the overlay on screen,
    or, with ``message``, for a message that contains it; the seconds in between."""
    clear(page)
    start = time.perf_counter()
    page.set_input_files("#photos input[type=file]", [str(f) for f in files])
    if message is None:
        page.wait_for_function(OVERLAY_LOADED, timeout=timeout_s * 1000)
    else:
        shown = "text => document.querySelector('#messages')?.innerText.includes(text)"
        page.wait_for_function(shown, arg=message, timeout=timeout_s * 1000)
    return time.perf_counter() - start


def page_ms(page: Any) -> tuple[float, float]:
    """The page's own figures for the photo shown: the prediction alone (``segmented in N ms``), and
    with reading the photo and making the pictures (the server's whole work)."""
    text = page.inner_text("#timing")
    found = re.search(r"segmented in ([\d.]+) ms .*; ([\d.]+) ms with reading", text)
    return float(found.group(1)), float(found.group(2))


def settle(page: Any) -> None:
    """Wait until no panel of the page shows Gradio's busy state (it dims them), e.g. for a screenshot."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=status-tracker]')].every(t => t.classList.contains('hide'))"
    )
    page.wait_for_timeout(500)  # the panels' fade back in


def open_page(browser: Any, url: str, requested: list[str] | None = None, width: int = 1400, height: int = 900) -> Any:
    """A new tab on the page, once its upload field is there; ``requested`` collects every URL it asks for."""
    page = browser.new_page(viewport={"width": width, "height": height})
    if requested is not None:
        page.on("request", lambda r: requested.append(r.url))
    page.goto(url)
    page.wait_for_selector("#photos input[type=file]", state="attached")
    return page


def measure(pages: dict[str, Any], photos: dict[str, Path], rounds: int) -> list[dict]:
    """Per size and path: median seconds from upload to overlay, per round, and the ratio to PyTorch."""
    for page in pages.values():  # untimed: the first prediction of each size warms the model up
        for f in photos.values():
            upload(page, [f])
    # (size, path) -> per round: (upload to overlay, the prediction, the server's work), in ms
    times: dict[tuple[str, str], list[tuple[float, float, float]]] = {(s, n): [] for s in photos for n in pages}
    names = list(pages)
    for r in range(rounds):
        for size, f in photos.items():
            for name in names if r % 2 == 0 else names[::-1]:
                seconds = upload(pages[name], [f])
                times[size, name].append((1000 * seconds, *page_ms(pages[name])))
                print(f"[benchmarks.demo] round {r + 1} {size} {name}: {1000 * seconds:.0f} ms", file=sys.stderr)
    results = []
    for size in photos:
        for name in names:
            ms = [t[0] for t in times[size, name]]
            ratios = [a[0] / b[0] for a, b in zip(times[size, "pytorch"], times[size, name])]
            results.append(
                {
                    "size": size,
                    "path": name,
                    "upload_to_overlay_ms": statistics.median(ms),
                    "round_ms": ms,
                    "predict_ms": statistics.median(t[1] for t in times[size, name]),
                    "server_ms": statistics.median(t[2] for t in times[size, name]),
                    "speedup_vs_pytorch": statistics.median(ratios),
                    "round_speedups": ratios,
                }
            )
    return results


def markdown(report: dict) -> str:
    r, m = report, report["machine"]
    lines = [
        f"Upload to overlay on the demo page in headless Chromium ({r['chromium']}); {r['rounds']} rounds, paths "
        f"alternating; {m['cpu']} ({m['cpu_kind']}), {m['logical_cpus']} logical CPUs, torch {m['torch']}, "
        f"onnxruntime {r['onnxruntime']}, gradio {r['gradio']}; {r['date']}.",
        "",
        "| photo | model | upload to overlay, ms (median) | speed-up vs PyTorch (median of rounds) | per-round ms "
        "| of which the server's work, ms | of which the prediction, ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["results"]:
        rounds = ", ".join(f"{v:.0f}" for v in row["round_ms"])
        lines.append(
            f"| {row['size']} | {row['path']} | {row['upload_to_overlay_ms']:.0f} | {row['speedup_vs_pytorch']:.2f}x "
            f"| {rounds} | {row['server_ms']:.0f} | {row['predict_ms']:.0f} |"
        )
    lines += ["", f"Load average (1 min) before and after: {r['load_before']:.1f}, {r['load_after']:.1f}.", ""]
    lines += [f"Command: `{r['command']}`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, required=True, help="a checkpoint written by seg.train")
    parser.add_argument("--onnx", type=Path, required=True, help="its export: seg.export format=onnx")
    parser.add_argument("--sizes", type=lambda s: [parse_size(v) for v in s.split(",")], default="320x213,1024x768")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--photo", type=Path, help="a photo for the screenshot")
    parser.add_argument(
        "--screenshot", type=Path, help="save here the page of the --ckpt's run (its picker) after predicting --photo"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if isinstance(args.sizes, str):
        args.sizes = [parse_size(v) for v in args.sizes.split(",")]
    started = now()
    out = args.out or default_out(started)

    import gradio
    import onnxruntime
    from PIL import Image

    from benchmarks import machine

    with tempfile.TemporaryDirectory() as tmp:
        photos = {}
        for w, h in args.sizes:
            photos[f"{w}x{h}"] = Path(tmp) / f"photo_{w}x{h}.jpg"
            Image.fromarray(photo(w, h)).save(photos[f"{w}x{h}"], quality=90)
        env = {"GRADIO_TEMP_DIR": str(Path(tmp) / "gradio")}
        load_before = os.getloadavg()[0]
        servers = {
            "pytorch": DemoServer(f"ckpt_path={args.ckpt}", env=env),
            "onnxruntime": DemoServer(f"model_file={args.onnx}", env=env),
        }
        try:
            with chromium() as browser:
                pages = {name: open_page(browser, s.url) for name, s in servers.items()}
                results = measure(pages, photos, args.rounds)
                load_after = os.getloadavg()[0]
                version = browser.version
                if args.screenshot:
                    # the page as `python -m seg.demo runs=RUN_DIR` shows it: the picker lists the run
                    servers["picker"] = DemoServer(f"runs={args.ckpt.resolve().parents[1]}", env=env)
                    page = open_page(browser, servers["picker"].url)
                    upload(page, [args.photo or photos[next(iter(photos))]])
                    settle(page)
                    page.screenshot(path=str(args.screenshot), full_page=True)
        finally:
            for s in servers.values():
                s.stop()
    report = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks.demo " + " ".join(argv if argv is not None else sys.argv[1:]),
        "rounds": args.rounds,
        "load_before": load_before,
        "load_after": load_after,
        "chromium": version,
        "gradio": gradio.__version__,
        "onnxruntime": onnxruntime.__version__,
        "machine": machine(),
        "results": results,
    }
    write_report(out, "demo", report, markdown(report))


if __name__ == "__main__":
    main()
