"""Every widget lesson in a real browser: JupyterLab (and Jupyter Notebook 7) in headless Chromium
runs it, the mouse moves its widgets, and the figures and readouts computed in the kernel follow.

Skipped unless ``BEZKIT_BROWSER=1`` (see ``conftest.py``); run it with ``bash
scripts/browser_test.sh``. ``BEZKIT_BROWSER_THROTTLE=6`` slows the page's CPU 6 times and its
network (conftest's ``throttle``). For each case of :data:`CASES` (a front end and a lesson, copied
into a temporary root) the test runs every cell with the front end's *Run > Run All Cells* menu,
waits for the kernel to be idle, then:

- requires every figure widget (bezkit's :class:`~bezkit.widgets.canvas.Canvas`) of the lesson to
  show its data on its first render: each one has drawn trace paths with points, nothing is
  re-run;
- drags a slider of the lesson's first widget with the mouse: the slider's readout, the widget's
  HTML readout and the figure change;
- where the widget has draggable points (``bezkit.widgets.drag``: lesson 03), checks that each
  handle sits on its marker, drags a guide with the mouse and checks that the handle, the synced
  sliders, the curve and the readout (against the Bezier formula) all moved, then measures
  drag-to-redraw (:func:`measure_drag_to_redraw`);
- fails on any JavaScript error or uncaught page error while the lesson ran.

Screenshots: ``tests/browser/screenshots/<front end>-<lesson>-{before,after}.png`` (and
``-failure.png`` when it fails) and the drag timings ``timings-<front end>-<lesson>.json``, ignored
by git.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
THROTTLE = float(os.environ.get("BEZKIT_BROWSER_THROTTLE", "1") or 1)  # conftest applies it
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"

#: The widget lessons and the control the mouse works in each one's first widget: the description
#: of a slider it drags, or ``"button:<label>"`` for a toggle button it clicks (lesson 05: the
#: chains widget's round slider, over the chains' rounds 1..K).
LESSONS = {
    "01_rectified_flow.ipynb": "steps",
    "02_reflow_and_crossings.ipynb": "round k",
    "03_bezier_curves.ipynb": "t",
    "04_bezier_distillation.ipynb": "guide time s",
    "05_error_accumulation.ipynb": "round k",
    "06_bdense.ipynb": "branches K",
}
#: The front ends and the URL path that opens a notebook in each (``{stem}``, ``{notebook}``).
FRONTENDS = {
    "lab": "/lab/workspaces/{stem}/tree/{notebook}",
    "nb7": "/notebooks/{notebook}",
}
#: What runs: every lesson in JupyterLab; in Notebook 7 the lesson whose widgets have draggable
#: points and the one with the most widget kinds' code in one lesson (both quick to run).
CASES = [("lab", nb) for nb in LESSONS] + [("nb7", "03_bezier_curves.ipynb")]
#: Files of the checkout a lesson reads, copied beside it (lesson 05: the committed experiment).
LESSON_DATA = ("data/results/results.json", "data/results/chain-trajectories.npz")
RUN_TIMEOUT = 300.0  # seconds for "Run All Cells" of one lesson
DRAG_STEPS = 15  # mouse moves of the measured drag, each waiting for the curve's redraw
QUADRATIC = ((-2.0, -1.0), (-1.0, 2.5), (2.0, 1.0))  # bezkit.widgets.DEFAULT_CONTROL_POINTS[2]
#: Console errors that are not the lessons' nor the widgets', per front end, as regular expressions
#: over conftest's console lines (message ``@`` where it came from). Notebook 7.6's own bundle
#: (``/static/notebook/``) raises two errors while its page loads and asks for three fonts its
#: server refuses (403), with any notebook and no widget (see docs/BROWSER_TEST.md).
CONSOLE_ALLOWED: dict[str, tuple[str, ...]] = {
    "lab": (),
    "nb7": (
        r"^\[pageerror\] Cannot read properties of undefined \(reading 'schema'\) @ "
        r"at .*/static/notebook/notebook_core\.",
        r"^\[pageerror\] Command 'filebrowser:open-path' not registered\. @ "
        r"at .*/static/notebook/notebook_core\.",
        r"^\[error\] Failed to load resource: the server responded with a status of 403 "
        r"\(Forbidden\) @ \S*/static/notebook/[0-9a-f]+\.woff2?$",
    ),
}
#: Before "Clear Outputs of All Cells" the front end may try to render the notebook's *stored*
#: widget outputs, whose models do not exist in a new kernel (the widget manager logs this).
STORED_OUTPUT_ERRORS = (r"^\[error\] Error: widget model not found\b",)

#: Every code cell's input prompt: "[ ]:" never run, "[*]:" queued or running, "[3]:" done.
PROMPTS_JS = """() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')]
    .map(c => (c.querySelector('.jp-InputArea-prompt')?.textContent || '').trim())"""
#: The kernel's status as the notebook toolbar shows it ("idle", "busy", ...).
KERNEL_STATUS_JS = """() => {
    const el = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
    return el ? el.getAttribute('data-status') : null;
}"""
#: What the figures of ``root`` draw: every trace path's ``d`` (bezkit's canvas, canvas.js).
PLOT_SVG_JS = """(root) => [...root.querySelectorAll('.bezkit-canvas .bezkit-trace path')]
    .map(p => p.getAttribute('d')).join('|')"""
#: Per figure widget on the page: how many points its trace paths draw (the move-to and line-to
#: commands of lines, one sub-path per marker), and its trace names.
CANVAS_DATA_JS = """() => [...document.querySelectorAll('.jp-OutputArea-output .bezkit-canvas')]
    .map(c => ({
        points: [...c.querySelectorAll('.bezkit-trace path')]
            .map(p => ((p.getAttribute('d') || '').match(/[MLa]/g) || []).length)
            .reduce((a, b) => a + b, 0),
        traces: [...c.querySelectorAll('.bezkit-trace')].map(g => g.dataset.name),
        width: c.querySelector('svg')?.getBoundingClientRect().width || 0,
        natural: c.querySelector('svg')?.viewBox.baseVal.width || 0,
        room: c.getBoundingClientRect().width,
    }))"""


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


def quadratic_point(
    t: float, points: tuple[tuple[float, float], ...] = QUADRATIC
) -> tuple[float, float]:
    """B(t) of a quadratic Bezier curve (the first widget's, by default), by the formula."""
    (x0, y0), (gx, gy), (x1, y1) = points
    a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t**2
    return a * x0 + b * gx + c * x1, a * y0 + b * gy + c * y1


def number(text: str) -> float:
    """A slider readout as a float (ipywidgets writes negative numbers with a Unicode minus)."""
    return float(text.strip().replace("\u2212", "-"))


def readout_point(text: str) -> tuple[float, float]:
    """B(t) as the widget's readout shows it."""
    m = re.search(r"B\(t\) = \((-?[\d.]+), (-?[\d.]+)\)", text)
    assert m, f"no B(t) in the readout {text!r}"
    return float(m[1]), float(m[2])


def code_cells(path: Path) -> list[str]:
    """The sources of the notebook's code cells."""
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def kernel_state(lab: Any, notebook: str) -> str | None:
    """The execution state of the notebook's one kernel, as the server sees it (else ``None``)."""
    sessions = [s for s in lab.api("/api/sessions") if s["path"] == notebook]
    kernels = [s["kernel"] for s in sessions if s.get("kernel")]
    if len(kernels) != 1 or kernels[0].get("connections", 0) < 1:
        return None
    return str(kernels[0]["execution_state"])


def idle(lab: Any, page: Any, notebook: str) -> bool:
    """The notebook's kernel runs, is idle and connected to the page (the server says so, and the
    toolbar too where it shows the kernel's status: JupyterLab's does, Notebook 7's may not)."""
    toolbar = page.evaluate(KERNEL_STATUS_JS)
    return kernel_state(lab, notebook) == "idle" and toolbar in ("idle", None)


def menu(page: Any, name: str, item: str) -> None:
    """Click JupyterLab's menu bar entry ``name``, then its item ``item``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(name)}$")).click()
    label = page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$"))
    page.locator(".lm-Menu-item").filter(has=label).click()


def scroll_to_top(locator: Any) -> None:
    locator.evaluate("el => el.scrollIntoView({block: 'start', inline: 'nearest'})")


def center(locator: Any) -> tuple[float, float]:
    box = locator.bounding_box()
    assert box, "the element has no layout box"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


#: What the mouse would press at ``(x, y)`` when it is not ``el`` (or inside it), else ``null``.
HIT_TEST_JS = """(el, [x, y]) => {
    const hit = document.elementFromPoint(x, y);
    if (hit && (hit === el || el.contains(hit))) return null;
    return hit ? hit.tagName.toLowerCase() + '.' + [...hit.classList].join('.') : 'nothing';
}"""


def scroll_to_middle(locator: Any) -> None:
    """Scroll ``locator`` to the middle of the view, clear of the notebook's toolbar."""
    locator.evaluate("el => el.scrollIntoView({block: 'center', inline: 'nearest'})")


def settle_in_view(page: Any, locator: Any, *, timeout: float = 30.0) -> None:
    """Scroll ``locator`` to the middle of the view and wait until it stays where it is and the
    mouse would reach it: on a throttled page, figures above it may still be rendering and push it
    down (off the screen) after the scroll."""
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scroll_to_middle(locator)
        page.wait_for_timeout(300)
        box = locator.bounding_box()
        if box and box == last and locator.evaluate(HIT_TEST_JS, [*center(locator)]) is None:
            return
        last = box


def drag_by(page: Any, locator: Any, dx: float, dy: float) -> None:
    """Press the mouse on ``locator``'s centre, move by ``(dx, dy)`` pixels in steps, release.

    Fails, naming what is in the way, when the centre is covered by another element (a press
    there would not reach ``locator``)."""
    x, y = center(locator)
    blocker = locator.evaluate(HIT_TEST_JS, [x, y])
    assert blocker is None, f"the mouse at ({x:.0f}, {y:.0f}) would press on {blocker}"
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=12)
    page.mouse.up()


def slider(out: Any, description: str) -> Any:
    """The ipywidgets slider of ``out`` whose description is exactly ``description``."""
    page = out.page
    return out.locator(".widget-slider").filter(
        has=page.locator(".widget-label", has_text=re.compile(f"^{re.escape(description)}$"))
    )


def first_widget_output(page: Any) -> Any:
    """The first cell output holding both a slider and a figure: the lesson's first widget."""
    return (
        page.locator(".jp-OutputArea-output")
        .filter(has=page.locator(".widget-slider"))
        .filter(has=page.locator(".bezkit-canvas"))
        .first
    )


def figures_show_data(page: Any) -> tuple[bool, list[dict[str, Any]]]:
    """A ``wait_until`` check: every figure widget on the page draws points (none is empty), at
    its own width where the output has room for it (else as wide as the output)."""
    canvases = page.evaluate(CANVAS_DATA_JS)
    ok = all(
        c["points"] > 0 and c["width"] >= min(c["natural"], c["room"]) - 2 > 0 for c in canvases
    )
    return bool(canvases) and ok, canvases


def shut_down_kernels(lab: Any, notebook: str) -> None:
    """End the notebook's sessions (and so its kernel): the next lesson gets the CPU."""
    for s in lab.api("/api/sessions"):
        if s["path"] == notebook:
            lab.api(f"/api/sessions/{s['id']}", method="DELETE")


def console_errors(lines: list[str], frontend: str) -> list[str]:
    """The JavaScript errors and uncaught page errors of ``lines``, less the front end's own
    known ones (:data:`CONSOLE_ALLOWED`)."""
    allowed = CONSOLE_ALLOWED[frontend]
    return [
        line
        for line in lines
        if line.startswith(("[error]", "[pageerror]"))
        and not any(re.search(ok, line) for ok in allowed)
    ]


def copy_lesson(root: Path, notebook: str) -> None:
    """The lesson and the files it reads (:data:`LESSON_DATA`) into the server's ``root``."""
    shutil.copy(REPO / "notebooks" / notebook, root / notebook)
    for rel in LESSON_DATA:
        if (REPO / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / rel, root / rel)


def run_errors(lines: list[str], start: int, cleared: int, frontend: str) -> list[str]:
    """The errors of ``lines[start:]`` (one lesson's): before the outputs were cleared (line
    ``cleared``) less :data:`STORED_OUTPUT_ERRORS`, after it all (less the front end's own)."""
    before = console_errors(lines[start:cleared], frontend)
    return [
        line for line in before if not any(re.search(ok, line) for ok in STORED_OUTPUT_ERRORS)
    ] + console_errors(lines[cleared:], frontend)


@pytest.mark.parametrize(("frontend", "notebook"), CASES, ids=[f"{f}-{n[:-6]}" for f, n in CASES])
def test_lesson_runs_and_its_widgets_answer_the_mouse(
    lab: Any, browser: Any, frontend: str, notebook: str
) -> None:
    """``lab`` and ``browser`` are conftest's ``Lab`` and ``Browser``."""
    from playwright.sync_api import expect

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    stem = notebook.removesuffix(".ipynb")
    shot = f"{frontend}-{stem}"
    for old in SCREENSHOTS.glob(f"{shot}-*"):
        old.unlink()
    copy_lesson(lab.root, notebook)
    sources = code_cells(lab.root / notebook)
    n_code = len(sources)
    n_figures = sum("plt.show()" in src for src in sources)  # cells that show a matplotlib figure
    n_console = len(browser.console)
    page = browser.fresh_page()
    # lesson 03 (the drag widgets) is slowed down from the page's first request, JupyterLab's own
    # start included; the other lessons from "Run All" on (their widget modules load then)
    slow_from_start = notebook == "03_bezier_curves.ipynb"
    if slow_from_start:
        browser.slow_down()
    t0 = time.monotonic()

    def step(msg: str) -> None:
        print(f"[{shot} {time.monotonic() - t0:6.1f} s] {msg}")

    try:
        url = FRONTENDS[frontend].format(stem=stem, notebook=notebook)
        page.goto(f"{lab.url}{url}?token={lab.token}")
        expect(page.locator(".jp-NotebookPanel .jp-CodeCell").first).to_be_visible(timeout=180_000)
        # the toolbar says "idle" before a kernel exists: ask the server too
        wait_until("the kernel to start", lambda: idle(lab, page, notebook), timeout=180)
        step(f"notebook open in {frontend}, kernel idle (page throttled {THROTTLE:g}x)")

        # Edit > Clear Outputs of All Cells: the stored outputs and prompts go, so that what is
        # there after Run > Run All Cells is this run's (fresh prompts are [1]:, [2]:, ... again)
        menu(page, "Edit", "Clear Outputs of All Cells")
        wait_until(
            "the stored outputs to be cleared",
            lambda: page.evaluate(PROMPTS_JS) == ["[ ]:"] * n_code,
            timeout=60,
        )
        assert page.locator(".jp-OutputArea-output").count() == 0
        n_cleared = len(browser.console)  # from here on, every line is this run's
        if not slow_from_start:
            browser.slow_down()
        menu(page, "Run", "Run All Cells")

        errors = page.locator(".jp-OutputArea-output", has_text="Traceback")

        def all_ran() -> tuple[bool, list[str]]:
            if errors.count():  # Run All stops at the first error: no need to wait
                pytest.fail(f"a cell raised:\n{errors.first.inner_text()}")
            prompts = page.evaluate(PROMPTS_JS)
            done = len(prompts) == n_code and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)
            return done and idle(lab, page, notebook), prompts

        _, prompts = wait_until("every cell to run", all_ran, timeout=RUN_TIMEOUT)
        step(f"all {n_code} code cells ran: {' '.join(prompts)}")
        broken = page.locator(".jp-OutputArea-output", has_text="Error displaying widget")
        assert broken.count() == 0, broken.first.inner_text()

        if notebook == "05_error_accumulation.ipynb":  # the committed run, not a quick fallback
            loaded = page.locator(".jp-OutputArea-output", has_text="loaded results.json")
            assert loaded.count() >= 1, "lesson 05 did not load the committed results.json"
        images = page.locator(".jp-OutputArea .jp-RenderedImage img")
        wait_until(f"{n_figures}+ matplotlib figures", at_least(images, n_figures), timeout=60)
        # every figure widget shows its data on its first render: nothing is run again
        _, canvases = wait_until(
            "every figure widget to draw its data", lambda: figures_show_data(page), 60
        )
        step(
            f"{len(canvases)} figure widgets drew their data on the first render "
            f"(points: {[c['points'] for c in canvases]}) and {images.count()} matplotlib figures"
        )
        out = first_widget_output(page)
        scroll_to_top(out)
        expect(out.locator(".bezkit-canvas").first).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / f"{shot}-before.png"))

        if notebook == "03_bezier_curves.ipynb":
            check_bezier_widget(page, out, step)
            timings = measure_drag_to_redraw(page, out, step)
            (SCREENSHOTS / f"timings-{shot}.json").write_text(
                json.dumps({"throttle": THROTTLE, "frontend": frontend, **timings}, indent=1)
            )
        elif LESSONS[notebook].startswith("button:"):
            check_button_redraws(page, out, LESSONS[notebook].removeprefix("button:"), step)
        else:
            check_slider_redraws(page, out, LESSONS[notebook], step)
        time.sleep(0.5)  # let the last redraw land before the picture
        page.screenshot(path=str(SCREENSHOTS / f"{shot}-after.png"))
        bad = run_errors(browser.console, n_console, n_cleared, frontend)
        assert not bad, "JavaScript errors in the browser console:\n" + "\n".join(bad)
    except BaseException:
        with contextlib.suppress(Exception):  # the page may be gone: keep the first error
            page.screenshot(path=str(SCREENSHOTS / f"{shot}-failure.png"))
        raise
    finally:
        with contextlib.suppress(Exception):
            shut_down_kernels(lab, notebook)


def measure_drag_to_redraw(page: Any, out: Any, step: Callable) -> dict[str, Any]:
    """Drag the guide G1 in :data:`DRAG_STEPS` small mouse moves, waiting after each for the curve
    to be redrawn; returns the milliseconds from each move to the redraw (the page's clock:
    ``performance.now()`` before the move, and in a ``MutationObserver`` on the figure when the
    curve's path changes) and their median."""
    handle = out.locator(".bezkit-drag-points circle.bezkit-handle").nth(1)
    canvas = out.locator(".bezkit-canvas").first
    canvas.evaluate(
        """(el) => {
            const curve = () => el.querySelector('[data-name="curve"] path')?.getAttribute('d');
            window.__bzRedraw = { before: curve(), at: 0 };
            new MutationObserver(() => {
                const r = window.__bzRedraw;
                if (!r.at && curve() !== r.before) r.at = performance.now();
            }).observe(el, { attributes: true, childList: true, subtree: true });
        }"""
    )
    scroll_to_middle(handle)
    x, y = center(handle)
    page.mouse.move(x, y)
    page.mouse.down()
    times = []
    for i in range(1, DRAG_STEPS + 1):
        start = page.evaluate(
            """() => { const r = window.__bzRedraw;
                r.before = document.querySelector('.bezkit-canvas [data-name="curve"] path')
                    ?.getAttribute('d');
                r.at = 0; return performance.now(); }"""
        )
        page.mouse.move(x - 3 * i, y - 2 * i)
        page.wait_for_function("() => window.__bzRedraw.at > 0", timeout=30_000)
        times.append(page.evaluate("() => window.__bzRedraw.at") - start)
    page.mouse.up()
    ms = sorted(times)
    median = statistics.median(ms)
    step(
        f"drag-to-redraw over {len(ms)} moves: median {median:.0f} ms (min {ms[0]:.0f}, max {ms[-1]:.0f})"
    )
    return {"drag_to_redraw_ms": [round(t, 1) for t in times], "median_ms": round(median, 1)}


def check_button_redraws(page: Any, out: Any, label: str, step: Callable) -> None:
    """Click the toggle button ``label`` of the widget ``out`` with the mouse: the widget's HTML
    readout and the plot change."""
    from playwright.sync_api import expect

    button = out.locator("button", has_text=label)
    expect(button).to_have_count(1)
    html = out.locator(".widget-html-content").first
    expect(html).not_to_have_text("")
    before = (html.inner_text(), out.evaluate(PLOT_SVG_JS))
    scroll_to_middle(button)
    x, y = center(button)
    page.mouse.click(x, y)
    wait_until("the readout to change", lambda: html.inner_text() != before[0], timeout=60)
    wait_until("the plot to redraw", lambda: out.evaluate(PLOT_SVG_JS) != before[1], timeout=30)
    scroll_to_top(out)
    step(f"clicked {label!r}; readout {html.inner_text()[:90]!r}")


def check_slider_redraws(page: Any, out: Any, description: str, step: Callable) -> None:
    """Drag the slider ``description`` of the widget ``out`` to the far end of its track: its
    readout, the widget's HTML readout and the plot change."""
    from playwright.sync_api import expect

    s = slider(out, description)
    expect(s).to_have_count(1)
    value = s.locator(".widget-readout")
    html = out.locator(".widget-html-content").first
    expect(html).not_to_have_text("")
    before = (value.inner_text(), html.inner_text(), out.evaluate(PLOT_SVG_JS))
    handle, track = s.locator(".noUi-handle"), s.locator(".noUi-target")
    # scroll_to_top leaves a widget's first row under the notebook's toolbar (lesson 06's sliders
    # are its first row): a press there hits the toolbar, not the handle
    settle_in_view(page, handle)
    tb = track.bounding_box()
    assert tb, f"the {description!r} slider has no layout box"
    x, _ = center(handle)
    # to the far end of the track from where the handle is: a change for any slider of 2+ values
    far = tb["x"] + tb["width"] - 2 if x < tb["x"] + tb["width"] / 2 else tb["x"] + 2
    drag_by(page, handle, far - x, 0)
    expect(value).not_to_have_text(before[0])
    wait_until("the readout to change", lambda: html.inner_text() != before[1], timeout=60)
    wait_until("the plot to redraw", lambda: out.evaluate(PLOT_SVG_JS) != before[2], timeout=30)
    scroll_to_top(out)  # the plot back in view for the "after" screenshot
    step(f"{description}: {before[0]} -> {value.inner_text()}; readout {html.inner_text()[:90]!r}")


def check_bezier_widget(page: Any, out: Any, step: Callable) -> None:
    """Lesson 03: the ``t`` slider, then a mouse drag of the guide G1 on the plot itself."""
    from playwright.sync_api import expect

    expect(out.locator(".bezkit-canvas .bezkit-title").first).to_contain_text(
        "Bezier curve of order 2"
    )
    t_slider = slider(out, "t")
    expect(t_slider).to_have_count(1)
    value = t_slider.locator(".widget-readout")
    html = out.locator(".widget-html-content", has_text="B(t)")
    expect(value).to_have_text("0.50")
    expect(html).to_contain_text("t = 0.50")
    html_before, svg_before = html.inner_text(), out.evaluate(PLOT_SVG_JS)
    assert readout_point(html_before) == quadratic_point(0.5)  # (-0.5, 1.25): exact

    # the t slider's handle, right by a third of the track, as a person would
    tb = t_slider.locator(".noUi-target").bounding_box()
    assert tb, "the t slider has no layout box"
    drag_by(page, t_slider.locator(".noUi-handle"), tb["width"] / 3, 0)
    expect(value).not_to_have_text("0.50")
    t_after = number(value.inner_text())
    assert 0.7 <= t_after <= 0.95, f"t moved to {t_after}, expected about 0.83"
    expect(html).to_contain_text(f"t = {t_after:.2f}", timeout=30_000)
    wait_until("the plot to redraw", lambda: out.evaluate(PLOT_SVG_JS) != svg_before, timeout=30)
    html_after = html.inner_text()
    got, want = readout_point(html_after), quadratic_point(t_after)
    assert max(abs(g - w) for g, w in zip(got, want)) < 2e-3, f"B({t_after}) = {got} != {want}"
    step(f"t: 0.50 -> {t_after:.2f}; readout now {html_after.splitlines()[0]!r}")

    # the draggable handles sit on the control polygon's markers
    handles = out.locator(".bezkit-drag-points circle.bezkit-handle")
    expect(handles).to_have_count(3)
    markers = out.locator('.bezkit-canvas [data-name="control polygon"] path.bezkit-marker')
    expect(markers).to_have_count(3)
    for i in range(3):
        (hx, hy), (mx, my) = center(handles.nth(i)), center(markers.nth(i))
        assert abs(hx - mx) < 2.5 and abs(hy - my) < 2.5, (
            f"handle {i} at ({hx:.1f}, {hy:.1f}) but its marker at ({mx:.1f}, {my:.1f})"
        )
    # drag G1 with the mouse: right and up
    g1 = handles.nth(1)
    gx = slider(out, "G1 x").locator(".widget-readout")
    gy = slider(out, "G1 y").locator(".widget-readout")
    assert (number(gx.inner_text()), number(gy.inner_text())) == (-1.0, 2.5)
    svg_before, (hx0, hy0) = out.evaluate(PLOT_SVG_JS), center(g1)
    drag_by(page, g1, 90, 40)
    wait_until("the G1 sliders to follow", lambda: number(gx.inner_text()) != -1.0, timeout=30)
    wait_until("the curve to redraw", lambda: out.evaluate(PLOT_SVG_JS) != svg_before, timeout=30)
    hx1, hy1 = center(g1)
    assert abs(hx1 - hx0 - 90) < 4 and abs(hy1 - hy0 - 40) < 4, "the handle did not follow"

    def readout_matches_guide() -> tuple[bool, Any]:
        """The kernel's readout B(t) is the formula's for the guide the sliders show (both settle
        a moment after the mouse is released: the drag's events are processed in order)."""
        g = (number(gx.inner_text()), number(gy.inner_text()))
        got = readout_point(html.inner_text())
        want = quadratic_point(t_after, (QUADRATIC[0], g, QUADRATIC[2]))
        return max(abs(a - b) for a, b in zip(got, want)) < 1e-2, (g, got, want)

    _, (g, _, _) = wait_until("the readout to use the dragged guide", readout_matches_guide, 30)
    assert g[0] > -1.0 and g[1] < 2.5, f"G1 moved the wrong way: {g}"
    step(f"G1 dragged to {g}; readout now {html.inner_text().splitlines()[0]!r}")
