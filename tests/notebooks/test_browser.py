"""Notebooks 02 and 05 opened in JupyterLab in a headless chromium (Playwright driving the
system's browser), as a user would: the command ``make lab`` runs (on a folder of parameterised
copies, bound to 127.0.0.1 with a token), Run All, then the page is read: the kernel started, every
figure cell shows its images, the live curves redrew during training, moving the α1 slider
redraws the advantage figure, the videos load with a positive duration, and the browser console
logged no error. 02 trains for real (2 iterations of 2 trajectories x 8 steps, 1 evaluation
episode per set, fresh policy); 05 reads synthetic run directories (tests/analysis/run_dirs.py)."""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from figure_outputs import FIGURE_CELLS
from run_fixtures import parameterised, synthetic_runs

import tgrpo_lib

pytestmark = [pytest.mark.browser, pytest.mark.notebook, pytest.mark.slow]
CHROMIUM = os.environ.get("TGRPO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL_HINT = "apt-get install -y chromium (tools/bootstrap.sh does it when run as root)"
LIVE_CURVES_CELL, SLIDER_CELL, VIDEO_CELL = "f175c476", "a7a76f06", "006891a1"  # in 02_training_run

NB02 = dict(sft_checkpoint=None, iterations=2, group_size=2, max_steps=8, final_eval_episodes=1, eval_interval=0,
            run_name="browser-02")

PANEL = "window.jupyterapp.shell.currentWidget"
JS_KERNEL_IDLE = f"""() => {{
  const k = window.jupyterapp && {PANEL} && {PANEL}.sessionContext && {PANEL}.sessionContext.session
            && {PANEL}.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && k.connectionStatus === 'connected';
}}"""
JS_WATCH_IMAGES = f"""() => {{
  // every image src each cell shows, in order, as the outputs change (redraws included)
  const panel = {PANEL};
  window.__images = {{}};
  const record = () => {{
    for (const cell of panel.content.widgets) {{
      const seen = (window.__images[cell.model.id] = window.__images[cell.model.id] || []);
      for (const img of cell.node.querySelectorAll('.jp-OutputArea-output img'))
        if (!seen.includes(img.src)) seen.push(img.src);
    }}
  }};
  new MutationObserver(record).observe(panel.content.node,
                                       {{subtree: true, childList: true, attributes: true, attributeFilter: ['src']}});
}}"""
JS_DONE = f"""() => {{
  const panel = {PANEL};
  const code = panel.content.widgets.filter(c => c.model.type === 'code');
  const failed = code.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));
  return failed || (code.every(c => c.model.executionCount !== null)
                    && panel.sessionContext.session.kernel.status === 'idle');
}}"""
JS_ERRORS = f"""() => {PANEL}.content.widgets.filter(c => c.model.type === 'code').flatMap(c =>
  c.model.outputs.toJSON().filter(o => o.output_type === 'error').map(o => c.model.id + ': ' + o.ename + ': ' + o.evalue))"""
JS_IMAGE_COUNTS = f"""() => Object.fromEntries({PANEL}.content.widgets.map(c =>
  [c.model.id, c.node.querySelectorAll('.jp-OutputArea-output img').length]))"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_command(folder: Path, port: int, token: str) -> list[str]:
    """What ``make lab`` runs (``--allow-root`` exactly when root), on ``folder``, for a test."""
    out = subprocess.run(["make", "-n", "-s", "lab", f"VENV={sys.prefix}"], cwd=tgrpo_lib.PROJECT_ROOT, check=True,
                         capture_output=True, text=True).stdout
    cmd = next(line for line in out.splitlines() if "bin/jupyter lab" in line).split()
    assert cmd[-1] == "notebooks/"
    return cmd[:-1] + [str(folder), "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
                       f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on the parameterised notebooks; kernels import this checkout's tgrpo_lib and
    write under a fresh TGRPO_OUTPUTS; user settings and workspaces isolated."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("needs the playwright package (pip install playwright; make's bootstrap installs it)")
    if not CHROMIUM:
        pytest.skip(f"needs a chromium browser: {INSTALL_HINT}; or point TGRPO_CHROMIUM at one")
    if shutil.which("make") is None:
        pytest.skip("needs make")
    tmp = tmp_path_factory.mktemp("browser")
    folder, outputs = tmp / "lab", tmp / "outputs"
    folder.mkdir()
    settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)  # every cell attached to the page, so every output can be read
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    names = {"02": parameterised("02_training_run.ipynb", folder, NB02),
             "05": parameterised("05_results_tables.ipynb", folder,
                                 dict(outputs_root=str(synthetic_runs(tmp / "runs")), results_name="browser"))}
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "TGRPO_OUTPUTS": str(outputs), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
           "PYTHONPATH": os.pathsep.join([str(tgrpo_lib.PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    log = (tmp / "lab.log").open("w")
    server = subprocess.Popen(lab_command(folder, port, token), cwd=folder, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(tmp / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield {"url": url, "token": token, "names": names, "outputs": outputs, "log": tmp / "lab.log"}
    finally:
        server.terminate()  # jupyter_server shuts its kernels down on SIGTERM
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
        log.close()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_and_run_all(browser, lab, name: str, timeout_s: float):
    """Open ``name`` in JupyterLab, wait for its kernel, Run All; returns (page, console errors)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"page error: {e}"))
    page.goto(f"{lab['url']}/lab/workspaces/{Path(name).stem}/tree/{name}?reset&token={lab['token']}")
    page.wait_for_function(JS_KERNEL_IDLE, timeout=90_000)  # the kernel started and answers
    page.evaluate(JS_WATCH_IMAGES)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(JS_DONE, timeout=timeout_s * 1000, polling=500)
    assert page.evaluate(JS_ERRORS) == [], lab["log"].read_text()[-3000:]
    return page, console


def move_slider(page, handle, dx: float) -> None:
    """Drag a slider's handle ``dx`` pixels to the right, as a mouse would."""
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=8)
    page.mouse.up()


def js_cell(cell_id: str) -> str:
    return f"{PANEL}.content.widgets.find(c => c.model.id === '{cell_id}').node"


def image_counts(page, name: str) -> dict:
    counts = page.evaluate(JS_IMAGE_COUNTS)
    return {cid: counts.get(cid) for cid in FIGURE_CELLS[Path(name).stem]}


@pytest.mark.sim
def test_training_notebook_in_jupyterlab(browser, lab):
    name = lab["names"]["02"]
    page, console = open_and_run_all(browser, lab, name, timeout_s=400)
    assert image_counts(page, name) == FIGURE_CELLS["02_training_run"]  # curves; advantage explorer: one copy

    live = page.evaluate(f"() => window.__images['{LIVE_CURVES_CELL}'] || []")
    assert len(live) >= NB02["iterations"], "the live curves were not redrawn after every iteration"
    assert page.evaluate(JS_IMAGE_COUNTS)[LIVE_CURVES_CELL] == 1  # redrawn in place: one figure shown

    cell = js_cell(SLIDER_CELL)
    before = page.evaluate(f"() => {cell}.querySelector('.jp-OutputArea-output img').src")
    readout = page.evaluate(f"() => {cell}.querySelector('.widget-readout').textContent")
    move_slider(page, page.locator(".noUi-handle").first, 40)
    page.wait_for_function(f"() => {cell}.querySelector('.jp-OutputArea-output img').src !== {json.dumps(before)}",
                           timeout=30_000)
    assert page.evaluate(f"() => {cell}.querySelector('.widget-readout').textContent") != readout
    assert page.evaluate(f"() => {cell}.querySelectorAll('.jp-OutputArea-output img').length") == 1

    video = f"{js_cell(VIDEO_CELL)}.querySelectorAll('video')"
    page.wait_for_function(f"() => {{ const v = [...{video}]; return v.length === 2 "
                           "&& v.every(x => x.readyState >= 1 && x.duration > 0); }", timeout=30_000)
    durations = page.evaluate(f"() => [...{video}].map(v => v.duration)")
    assert all(d > 0 for d in durations), durations
    assert console == []
    page.close()


def test_results_notebook_in_jupyterlab(browser, lab):
    name = lab["names"]["05"]
    page, console = open_and_run_all(browser, lab, name, timeout_s=120)
    assert image_counts(page, name) == FIGURE_CELLS["05_results_tables"]  # Fig. 3 and Fig. 5
    assert console == []
    page.close()
