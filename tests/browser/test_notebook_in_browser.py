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

#: Every code cell's input prompt, and whether one of them is still queued or running.
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
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {value!r})")


def code_cell_count(path: Any) -> int:
    return sum(c["cell_type"] == "code" for c in json.loads(path.read_text())["cells"])


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
    n_code = code_cell_count(lab.root / NOTEBOOK)
    page = browser.page
    t0 = time.monotonic()

    def step(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f} s] {msg}")

    try:
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}")
        expect(page.locator(".jp-NotebookPanel .jp-CodeCell").first).to_be_visible(timeout=120_000)
        wait_until(
            "the kernel to start", lambda: page.evaluate(KERNEL_STATUS_JS) == "idle", timeout=120
        )
        step("notebook open, kernel idle")

        # Edit > Clear Outputs of All Cells: the stored outputs and prompts go, so that what is
        # there after Run > Run All Cells is this run's (fresh prompts are [1]:, [2]:, ... again)
        menu(page, "Edit", "Clear Outputs of All Cells")
        wait_until(
            "the stored outputs to be cleared",
            lambda: all(p in ("[ ]:", "") for p in page.evaluate(PROMPTS_JS)),
            timeout=30,
        )
        assert page.locator(".jp-OutputArea-output").count() == 0
        menu(page, "Run", "Run All Cells")

        def all_ran() -> list[str] | None:
            prompts = page.evaluate(PROMPTS_JS)
            done = len(prompts) == n_code and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)
            return prompts if done and page.evaluate(KERNEL_STATUS_JS) == "idle" else None

        prompts = wait_until("every cell to run", all_ran, timeout=RUN_TIMEOUT)
        step(f"all {n_code} code cells ran: {' '.join(prompts)}")

        errors = page.locator(".jp-OutputArea-output", has_text="Traceback")
        assert errors.count() == 0, f"a cell failed:\n{errors.first.inner_text()}"
        assert (
            page.locator(".jp-OutputArea-output", has_text="Error displaying widget").count() == 0
        )

        sliders = page.locator(".jp-OutputArea-output .widget-slider")
        wait_until(f"{N_SLIDERS} sliders", lambda: sliders.count() >= N_SLIDERS, timeout=60)
        plots = page.locator(".jp-OutputArea-output .js-plotly-plot")
        wait_until("two plotly figures", lambda: plots.count() >= 2, timeout=60)
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
        step(f"{sliders.count()} sliders and {plots.count()} plotly figures rendered")

        t_slider = out.locator(".widget-slider").filter(
            has=page.locator(".widget-label", has_text=re.compile(r"^t$"))
        )
        expect(t_slider).to_have_count(1)
        value = t_slider.locator(".widget-readout")
        html = out.locator(".widget-html-content", has_text="B(t)")
        expect(value).to_have_text("0.50")
        expect(html).to_contain_text("t = 0.50")
        html_before, svg_before = html.inner_text(), out.evaluate(PLOT_SVG_JS)
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
        step(f"t: 0.50 -> {t_after:.2f}; readout now {html_after.splitlines()[0]!r}")
        time.sleep(0.5)  # let plotly finish its redraw before the picture
        page.screenshot(path=str(SCREENSHOTS / f"{stem}-after.png"))
    except BaseException:
        page.screenshot(path=str(SCREENSHOTS / f"{stem}-failure.png"))
        raise
