"""A lesson in a real browser: JupyterLab in headless Chromium runs it and a slider redraws the plot.

Skipped unless ``BEZKIT_BROWSER=1`` (see ``conftest.py``); run it with ``bash
scripts/browser_test.sh``. It opens ``notebooks/03_bezier_curves.ipynb`` (a copy, in a temporary
JupyterLab root), runs every cell with JupyterLab's *Run > Run All Cells* menu, waits for the kernel
to be idle and for the ipywidgets sliders and the plotly ``FigureWidget`` (anywidget) to render,
then drags the ``t`` slider of the first ``bezier_widget`` with the mouse and checks that the
slider's readout, the widget's HTML readout (computed in the kernel) and the plotly SVG all change.
Screenshots: ``tests/browser/screenshots/03_bezier_curves-{before,after}.png`` (and ``-failure.png``
when it fails), ignored by git.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"

NOTEBOOK = "03_bezier_curves.ipynb"
RUN_TIMEOUT = 240.0  # seconds for "Run All Cells" (about 12 s under nbval on 2 shared cores)
N_SLIDERS = 2 * 3 + 1 + 2 * 4 + 1  # bezier_widget(order=2) and (order=3): x, y per point, and t
QUADRATIC = ((-2.0, -1.0), (-1.0, 2.5), (2.0, 1.0))  # bezkit.widgets.DEFAULT_CONTROL_POINTS[2]

#: Every code cell's input prompt: "[ ]:" never run, "[*]:" queued or running, "[3]:" done.
PROMPTS_JS = """() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')]
    .map(c => (c.querySelector('.jp-InputArea-prompt')?.textContent || '').trim())"""
#: The kernel's status as the notebook toolbar shows it ("idle", "busy", ...).
KERNEL_STATUS_JS = """() => {
    const el = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
    return el ? el.getAttribute('data-status') : null;
}"""
#: What the plotly figure draws: every trace path's ``d`` and every marker's ``transform``.
PLOT_SVG_JS = """(root) => [...root.querySelectorAll('.js-plotly-plot .scatterlayer path')]
    .map(p => p.getAttribute('d') + '@' + (p.getAttribute('transform') || '')).join('|')"""


def wait_until(what: str, check: Callable[[], Any], timeout: float, every: float = 0.25) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` after ``timeout``.

    ``check`` may return a ``(done, detail)`` pair: ``detail`` (what it saw) goes in the failure.
    """
    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        value = check()
        done = value[0] if isinstance(value, tuple) else value
        if done:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {value!r})")


def at_least(locator: Any, n: int, exactly: bool = False) -> Callable[[], tuple[bool, int]]:
    """A ``wait_until`` check: ``locator`` matches ``n`` (or more) elements."""

    def check() -> tuple[bool, int]:
        count = locator.count()
        return (count == n if exactly else count >= n), count

    return check


def quadratic_point(t: float) -> tuple[float, float]:
    """B(t) of the first widget's curve, by the formula."""
    (x0, y0), (gx, gy), (x1, y1) = QUADRATIC
    a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t**2
    return a * x0 + b * gx + c * x1, a * y0 + b * gy + c * y1


def readout_point(text: str) -> tuple[float, float]:
    """B(t) as the widget's readout shows it."""
    m = re.search(r"B\(t\) = \((-?[\d.]+), (-?[\d.]+)\)", text)
    assert m, f"no B(t) in the readout {text!r}"
    return float(m[1]), float(m[2])


def code_cells(path: Path) -> list[str]:
    """The sources of the notebook's code cells."""
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def kernel_ready(lab: Any, page: Any) -> bool:
    """The notebook's kernel runs, is idle and connected to the page (server and toolbar agree)."""
    sessions = [s for s in lab.api("/api/sessions") if s["path"] == NOTEBOOK]
    kernels = [s["kernel"] for s in sessions if s.get("kernel")]
    return (
        len(kernels) == 1
        and kernels[0]["execution_state"] == "idle"
        and kernels[0].get("connections", 0) >= 1
        and page.evaluate(KERNEL_STATUS_JS) == "idle"
    )


def menu(page: Any, name: str, item: str) -> None:
    """Click JupyterLab's menu bar entry ``name``, then its item ``item``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(name)}$")).click()
    label = page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$"))
    page.locator(".lm-Menu-item").filter(has=label).click()


def scroll_to_top(locator: Any) -> None:
    locator.evaluate("el => el.scrollIntoView({block: 'start', inline: 'nearest'})")


def test_bezier_lesson_runs_and_slider_redraws(lab: Any, browser: Any) -> None:
    """``lab`` and ``browser`` are conftest's ``Lab`` and ``Browser``."""
    from playwright.sync_api import expect

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    stem = NOTEBOOK.removesuffix(".ipynb")
    for old in SCREENSHOTS.glob(f"{stem}-*.png"):
        old.unlink()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, lab.root / NOTEBOOK)
    sources = code_cells(lab.root / NOTEBOOK)
    n_code = len(sources)
    n_figures = sum("plt.show()" in src for src in sources)  # static matplotlib figures
    page = browser.page
    t0 = time.monotonic()

    def step(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f} s] {msg}")

    try:
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}")
        expect(page.locator(".jp-NotebookPanel .jp-CodeCell").first).to_be_visible(timeout=120_000)
        # the toolbar says "idle" before a kernel exists: ask the server too
        wait_until("the kernel to start", lambda: kernel_ready(lab, page), timeout=120)
        step("notebook open, kernel idle")

        # Edit > Clear Outputs of All Cells: the stored outputs and prompts go, so that what is
        # there after Run > Run All Cells is this run's (fresh prompts are [1]:, [2]:, ... again)
        menu(page, "Edit", "Clear Outputs of All Cells")
        wait_until(
            "the stored outputs to be cleared",
            lambda: page.evaluate(PROMPTS_JS) == ["[ ]:"] * n_code,
            timeout=30,
        )
        assert page.locator(".jp-OutputArea-output").count() == 0
        menu(page, "Run", "Run All Cells")

        errors = page.locator(".jp-OutputArea-output", has_text="Traceback")

        def all_ran() -> tuple[bool, list[str]]:
            if errors.count():  # Run All stops at the first error: no need to wait
                pytest.fail(f"a cell raised:\n{errors.first.inner_text()}")
            prompts = page.evaluate(PROMPTS_JS)
            done = len(prompts) == n_code and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)
            return done and page.evaluate(KERNEL_STATUS_JS) == "idle", prompts

        _, prompts = wait_until("every cell to run", all_ran, timeout=RUN_TIMEOUT)
        step(f"all {n_code} code cells ran: {' '.join(prompts)}")
        broken = page.locator(".jp-OutputArea-output", has_text="Error displaying widget")
        assert broken.count() == 0, broken.first.inner_text()

        images = page.locator(".jp-OutputArea .jp-RenderedImage img")
        wait_until(f"{n_figures} matplotlib figures", at_least(images, n_figures, exactly=True), 30)
        sliders = page.locator(".jp-OutputArea-output .widget-slider")
        wait_until(f"{N_SLIDERS} sliders", at_least(sliders, N_SLIDERS), timeout=60)
        plots = page.locator(".jp-OutputArea-output .js-plotly-plot")
        wait_until("two plotly figures", at_least(plots, 2), timeout=60)
        out = (
            page.locator(".jp-OutputArea-output")
            .filter(has=page.locator(".widget-slider"))
            .filter(has=page.locator(".js-plotly-plot"))
            .first
        )
        scroll_to_top(out)
        plot = out.locator(".js-plotly-plot").first
        expect(plot).to_be_visible()
        expect(plot.locator(".gtitle")).to_have_text("Bezier curve of order 2")
        wait_until("the curve drawn", lambda: out.evaluate(PLOT_SVG_JS), timeout=30)
        step(
            f"{sliders.count()} sliders, {plots.count()} plotly figures and {images.count()} "
            "matplotlib figures rendered"
        )

        t_slider = out.locator(".widget-slider").filter(
            has=page.locator(".widget-label", has_text=re.compile(r"^t$"))
        )
        expect(t_slider).to_have_count(1)
        value = t_slider.locator(".widget-readout")
        html = out.locator(".widget-html-content", has_text="B(t)")
        expect(value).to_have_text("0.50")
        expect(html).to_contain_text("t = 0.50")
        html_before, svg_before = html.inner_text(), out.evaluate(PLOT_SVG_JS)
        assert readout_point(html_before) == quadratic_point(0.5)  # (-0.5, 1.25): exact
        page.screenshot(path=str(SCREENSHOTS / f"{stem}-before.png"))

        # drag the handle of t right by a third of the track, as a person would
        handle = t_slider.locator(".noUi-handle")
        track = t_slider.locator(".noUi-target")
        hb, tb = handle.bounding_box(), track.bounding_box()
        assert hb and tb, "the t slider has no layout box"
        x, y = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + tb["width"] / 3, y, steps=12)
        page.mouse.up()

        expect(value).not_to_have_text("0.50")
        t_after = float(value.inner_text())
        assert 0.7 <= t_after <= 0.95, f"t moved to {t_after}, expected about 0.83"
        expect(html).to_contain_text(f"t = {t_after:.2f}", timeout=30_000)
        wait_until(
            "the plot to redraw", lambda: out.evaluate(PLOT_SVG_JS) != svg_before, timeout=30
        )
        html_after = html.inner_text()
        assert html_after != html_before
        got, want = readout_point(html_after), quadratic_point(t_after)
        assert max(abs(g - w) for g, w in zip(got, want)) < 2e-3, f"B({t_after}) = {got} != {want}"
        step(f"t: 0.50 -> {t_after:.2f}; readout now {html_after.splitlines()[0]!r}")
        time.sleep(0.5)  # let plotly finish its redraw before the picture
        page.screenshot(path=str(SCREENSHOTS / f"{stem}-after.png"))
    except BaseException:
        with contextlib.suppress(Exception):  # the page may be gone: keep the first error
            page.screenshot(path=str(SCREENSHOTS / f"{stem}-failure.png"))
        raise
