"""End to end: a real server (as `make run` starts it) driven by Debian's Chromium through Playwright."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import aelab
import bench.app
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The module's two servers, started at once (each start is seconds of imports): the app as `make run`
    serves it, and the same in hosted mode (AELAB_HOSTED=1, strangers on one server); each on a free port with
    an empty runs directory."""
    started = {"local": start_server(tmp_path_factory),
               "hosted": start_server(tmp_path_factory, {"AELAB_HOSTED": "1"})}
    try:
        yield {name: wait_healthy(server) for name, server in started.items()}
    finally:
        stop_server(*started.values())


@pytest.fixture(scope="module")
def server(servers):
    return servers["local"]


@pytest.fixture(scope="module")
def hosted_server(servers):
    return servers["hosted"]


def start_server(tmp_path_factory, extra_env: dict | None = None, runs: Path | None = None) -> dict:
    """Start the app as `make run` starts it, on a free port; see wait_healthy and stop_server."""
    port = free_port()
    runs = runs or tmp_path_factory.mktemp("browser-runs")
    env = {**os.environ, "AELAB_RUNS_DIR": str(runs), "AELAB_DATA_DIR": str(tmp_path_factory.mktemp("data")),
           "AELAB_LIVE_REFRESH_S": "0.5",   # a running job's page redraws 4 times as often: the waits end sooner
           **(extra_env or {})}
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "pages.shared.serve", "run", str(ROOT / "streamlit_app.py"),
                             "--server.port", str(port), "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return {"url": f"http://127.0.0.1:{port}", "runs": runs, "log": Path(log.name), "pid": proc.pid,
            "process": proc, "log_file": log}


def wait_healthy(server: dict, seconds: float = 60) -> dict:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(server["url"] + "/_stcore/health", timeout=2).read() == b"ok":
                return server
        except OSError:
            time.sleep(0.3)
    stop_server(server)
    pytest.fail(f"streamlit did not become healthy within {seconds:.0f} s")


def stop_server(*servers: dict) -> None:
    for server in servers:   # all told first, then waited for: they stop together
        server["process"].terminate()
    for server in servers:
        server["process"].wait(10)
        server["log_file"].close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1900})
    pg = ctx.new_page()
    yield pg
    ctx.close()


def wait_idle(page, timeout=60_000):
    """Wait until Streamlit has finished running the script (no 'running' status widget)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)


def wait_images(page, n, timeout=60_000):
    """Wait until at least ``n`` images are on the page and every one of them has loaded."""
    page.wait_for_function(
        "n => { const imgs = [...document.querySelectorAll(\"[data-testid='stImage'] img\")];"
        " return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0); }", arg=n, timeout=timeout)


def assert_no_exception(page):
    assert page.locator("[data-testid='stException']").count() == 0, page.inner_text("body")[:2000]


def shot(page, name):
    """A full-page screenshot in test-artifacts/ when AELAB_SCREENSHOTS=1 (each costs a few tenths of a second:
    seconds over the module); a failing test's page is kept anyway (conftest.pytest_runtest_makereport)."""
    if os.environ.get("AELAB_SCREENSHOTS") == "1":
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_first_visit_through_a_share_link_uses_the_router(server, page):
    """The very first request to a fresh server is a share link to the Train page."""
    goto(page, f"{server['url']}/train?preset=vae&data=digits&latent=2", "Start training")
    page.get_by_text("Active run").or_(page.get_by_text("No runs yet")).first.wait_for(timeout=30_000)  # sidebar
    latent = page.get_by_role("spinbutton", name="Latent size")
    deadline = time.time() + 30   # the first request reruns through the router: read the settled form
    while latent.input_value() != "2" and time.time() < deadline:
        page.wait_for_timeout(250)
    assert latent.input_value() == "2"
    assert "AE Lab" in page.title()


def goto(page, url, ready=None, images=0):
    """Open ``url`` and wait until ``ready`` text (and ``images`` images) show; returns the seconds it took."""
    started = time.perf_counter()
    page.goto(url)
    if ready:
        page.get_by_text(ready).first.wait_for(timeout=60_000)
    if images:
        wait_images(page, images)
    wait_idle(page)
    assert_no_exception(page)
    return time.perf_counter() - started


def train_from_page(page, server, query):
    """Open the Train page from a share link, press Start, wait for the saved run. Returns timings."""
    goto(page, f"{server['url']}/train?{query}")
    page.get_by_role("button", name="Start training").wait_for(timeout=60_000)
    started = time.perf_counter()
    page.get_by_role("button", name="Start training").click()
    page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=120_000)
    first_point = time.perf_counter() - started
    page.get_by_text("saved (finished)").wait_for(timeout=300_000)
    wait_idle(page)
    assert_no_exception(page)
    return first_point


def decoded_image(page):
    return page.locator("[data-testid='stImage'] img").first.get_attribute("src")


def check_decode_and_timelapse(page):
    """Decode anywhere: a slider and a click on the plane decode new images. Time-lapse: ▶ plays the epochs."""
    page.get_by_text("Decode any point of the plane").wait_for(timeout=30_000)
    before = decoded_image(page)
    x_slider = page.get_by_role("slider").nth(1)   # the first is the number of test images
    x_slider.focus()
    for _ in range(15):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("src => { const i = document.querySelector(\"[data-testid='stImage'] img\");"
                           " return i && i.src !== src && i.complete; }", arg=before, timeout=30_000)
    wait_idle(page)
    after_slider = decoded_image(page)
    assert after_slider != before

    plot = page.locator(".js-plotly-plot").first
    box = plot.locator(".nsewdrag").first.bounding_box()   # the plot area
    target = (box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.8)
    page.mouse.move(*target)   # plotly finds the point under the cursor on hover, then clicks select it
    page.wait_for_timeout(500)
    page.mouse.click(*target)
    page.wait_for_function("src => { const i = document.querySelector(\"[data-testid='stImage'] img\");"
                           " return i && i.src !== src && i.complete; }", arg=after_slider, timeout=30_000)
    wait_idle(page)
    assert_no_exception(page)
    shot(page, "decode")

    lapse = page.locator(".js-plotly-plot").nth(1)
    lapse.scroll_into_view_if_needed()
    assert "epoch=0" in lapse.locator(".slider-container").text_content()
    lapse.locator(".updatemenu-button").first.click()   # play
    page.wait_for_function("el => el.querySelector('.slider-container').textContent.includes('epoch=2')",
                           arg=lapse.element_handle(), timeout=30_000)
    shot(page, "timelapse")


def reduction_in_the_browser(page, server):
    """The Latent space page's PCA section: the book's 3-D demo, then a comparison at k = 2 and 5 (one epoch
    each) started from the form, run as a job, and its chart. Returns the seconds from Compare to the chart."""
    page.get_by_text("The book's demo: PCA with a linear autoencoder").click()
    page.get_by_text("Its plane is PCA's to within").wait_for(timeout=60_000)
    assert page.get_by_text("Projected to 2-D: linear autoencoder (left) and PCA (right)").count() == 1
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("1")
    epochs.press("Tab")
    ks = page.locator("[data-testid='stForm']").get_by_role("combobox").first
    ks.click()
    for _ in range(3):   # removes the last code sizes chosen: 64, 30, then 10
        page.keyboard.press("Backspace")
    page.keyboard.press("Escape")
    started = time.perf_counter()
    page.get_by_role("button", name="Compare").click()
    page.get_by_text("Reconstruction error against code size").wait_for(timeout=180_000)
    seconds = time.perf_counter() - started
    wait_idle(page)
    assert_no_exception(page)
    (found,) = [p for p in server["runs"].iterdir() if (p / "comparison.json").exists()]
    rows = json.loads((found / "comparison.json").read_text())["rows"]
    assert sorted({r["k"] for r in rows}) == [2, 5] and {r["model"] for r in rows} == {"pca", "linear", "nonlinear"}
    shot(page, "pca-vs-autoencoders")
    return seconds


def pretrain_in_the_browser(page, server):
    """The Pretraining page: one seed, the default budgets up to 50 (digits has 1,500 training images, and
    the suite's time is short), Start, then the saved study's chart and verdict. Returns the seconds from
    Start to the chart."""
    goto(page, f"{server['url']}/pretrain", "Start the study")
    seeds = page.get_by_role("spinbutton", name="Seeds")
    seeds.fill("1")
    seeds.press("Tab")
    budgets = page.locator(".st-key-pre_labels")
    for budget in (5000, 1000, 500, 100):   # their chips' remove buttons (Backspace in the box lost keys under load)
        budgets.get_by_role("button", name=f"Remove {budget}", exact=True).click()
        budgets.get_by_role("button", name=f"Remove {budget}", exact=True).wait_for(state="detached", timeout=10_000)
    wait_idle(page)   # a click during a rerun can be lost: then no study starts
    started = time.perf_counter()
    page.get_by_role("button", name="Start the study").click()
    page.get_by_text("classifiers trained").or_(
        page.get_by_role("heading", name=re.compile(r"^pretrain-digits-"))).first.wait_for(timeout=60_000)
    # the new study, not the shipped example study shown before it
    page.get_by_role("heading", name=re.compile(r"^pretrain-digits-")).wait_for(timeout=180_000)
    page.get_by_text("fine-tuning beat training from scratch").first.wait_for(timeout=30_000)
    seconds = time.perf_counter() - started
    wait_idle(page)
    assert_no_exception(page)
    assert page.locator(".js-plotly-plot .legendtext").filter(has_text="frozen encoder").count() >= 1
    (study,) = [p for p in server["runs"].iterdir() if p.name.startswith("pretrain-digits-")]
    results = json.loads((study / "results.json").read_text())["fits"]
    assert sorted({f["labels"] for f in results}) == [10, 50] and {f["seed"] for f in results} == {0}
    shot(page, "pretrain")
    return seconds


def upload_in_the_browser(page, server):
    """The sidebar's upload: a hostile zip is refused with its reason, a zip of class folders becomes the
    session's data set."""
    from aelab import load_dataset
    from conftest import png_bytes, zip_bytes

    digits = load_dataset("digits")
    good = zip_bytes({f"digits/{'odd' if digits.y_train[i] % 2 else 'even'}/{i}.png":
                      png_bytes(digits.x_train[i, 0].numpy()) for i in range(60)})
    bad = zip_bytes({"../../outside.png": b"x"})
    goto(page, server["url"], "Data set in use")
    page.get_by_text("Add your own images").click()
    for name, data, outcome in (("bad.zip", bad, "unsafe name"), ("my-digits.zip", good, "Added")):
        page.locator("[data-testid='stSidebar'] input[type='file']").set_input_files(
            {"name": name, "mimeType": "application/zip", "buffer": data})
        page.locator("[data-testid='stSidebar']").get_by_text(name).wait_for(timeout=30_000)
        add_data_set(page, outcome)
    assert page.get_by_text("unsafe name").count() == 0   # the error went away with the good upload
    page.get_by_text("60 images of 28×28, 2 classes").wait_for(timeout=30_000)
    page.get_by_text("Data set in use: my-digits").first.wait_for(timeout=30_000)
    assert_no_exception(page)
    shot(page, "upload")


def add_data_set(page, outcome: str, tries: int = 40) -> None:
    """Press "Add data set" until ``outcome`` shows. The file reaches the server a moment after its name shows
    in the browser; a press before that is answered "Choose a file first.", and is pressed again."""
    for _ in range(tries):
        wait_idle(page)
        page.get_by_role("button", name="Add data set").click()
        page.get_by_text(outcome).or_(page.get_by_text("Choose a file first.")).first.wait_for(timeout=30_000)
        wait_idle(page)
        if page.get_by_text(outcome).count():
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"'{outcome}' never showed after Add data set")


def pick_option(page, box: str, option: str, tries: int = 3) -> None:
    """Open the selectbox ``box``, type to filter, pick ``option``. Keys typed at once after the click can
    reach the box before it is ready to open its list (it then keeps the text, closed): so type into it, and
    press ArrowDown to open it if it stayed closed. A click that lands during a rerun can be lost, and the list
    redrawn before the pick (both seen under load): then start again."""
    for attempt in range(tries):
        combo = page.get_by_role("combobox", name=box)
        combo.click()
        combo.press_sequentially(option, delay=20)
        if combo.get_attribute("aria-expanded") != "true":
            combo.press("ArrowDown")
        choice = page.get_by_role("option", name=option, exact=True)
        try:   # the list can also be redrawn under the pointer (a rerun), so the click is retried too
            choice.wait_for(timeout=10_000)
            choice.click(timeout=10_000)
            return
        except Exception:
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")
            wait_idle(page)


def sweep_in_the_browser(page, server):
    """Sweep the latent size over 2 and 4 from the Train page: both runs train, one after the other."""
    goto(page, f"{server['url']}/train?preset=stacked&data=digits&epochs=1&hidden=16", "Start training")
    page.get_by_text("Sweep: several runs").click()
    wait_idle(page)
    pick_option(page, "Setting 1", "latent")
    wait_idle(page)
    values = page.get_by_role("textbox", name="Values of latent")
    values.fill("2, 4")
    values.press("Enter")
    wait_idle(page)
    started = time.perf_counter()
    page.get_by_role("button", name="Start the sweep (2 runs)").click()
    page.get_by_text("Compare them on the Runs page").wait_for(timeout=180_000)
    assert_no_exception(page)
    assert len([p for p in server["runs"].iterdir() if p.name.startswith("sweep-stacked-")]) == 2
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def stacked_from_the_train_page(server, browser):
    """The book's recipe trained on digits from the Train page of the module's server, once: the seconds from
    Start to the first live point. The tests below inspect this run (and the runs they add) page by page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1900})
    try:
        page = context.new_page()
        first_point = train_from_page(page, server, "preset=stacked&data=digits&epochs=2")
        page.get_by_text("Validation loss").first.wait_for(timeout=30_000)   # the finished run's metrics
        shot(page, "train")
    finally:
        context.close()
    runs = [p.name for p in server["runs"].iterdir()]
    assert len(runs) == 1 and runs[0].startswith("stacked-digits-")
    return first_point


def print_timings(timings: dict) -> None:
    for name, seconds in timings.items():
        print(f"browser timing: {name}: {seconds:.2f} s")


def test_train_then_inspect_in_the_browser(server, page, stacked_from_the_train_page):
    """Home, then the trained run's reconstructions, its latent space (decode anywhere, the time-lapse, the
    hover map) and a comparison of PCA with autoencoders run as a job from the Latent space page."""
    timings = {"home": goto(page, server["url"], "Data set in use"),
               "Start -> first live point (stacked, digits)": stacked_from_the_train_page}
    shot(page, "home")
    timings["reconstructions"] = goto(page, f"{server['url']}/reconstructions", "worst-reconstructed", images=2)
    shot(page, "reconstructions")

    started = time.perf_counter()
    page.goto(f"{server['url']}/latent")
    page.locator(".js-plotly-plot .legendtext").first.wait_for(timeout=60_000)   # one legend entry per class
    wait_idle(page)
    assert_no_exception(page)
    timings["latent space (PCA)"] = time.perf_counter() - started
    shot(page, "latent")
    check_decode_and_timelapse(page)
    page.get_by_text("See the images in the map").click()   # the hover map, through the server
    iframe = page.locator("iframe[data-testid='stIFrame']").first
    iframe.wait_for(timeout=60_000)
    iframe.scroll_into_view_if_needed()
    hover = iframe.element_handle().content_frame()
    hover.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60_000)
    assert hover_points(page, hover, map_box(page, hover), hoverable(hover, range(0, 300, 30)))
    shot(page, "latent-hover")
    timings["PCA vs autoencoders, k = 2 and 5 (digits)"] = reduction_in_the_browser(page, server)
    print_timings(timings)


def test_pretrain_then_generate_in_the_browser(server, page, stacked_from_the_train_page):
    """A pretraining study of the trained encoder from the Pretraining page; then a VAE and a GAN trained from
    the Train page, sampled side by side on the Generate page."""
    timings = {"pretraining study (stacked, digits)": pretrain_in_the_browser(page, server)}
    train_from_page(page, server, "preset=vae&data=digits&epochs=2&batch_size=32&latent=2&lr=0.003")
    # samples, interpolation, traversal and the 2-D manifold
    timings["generate (VAE)"] = goto(page, f"{server['url']}/generate", "Samples side by side", images=4)
    shot(page, "generate-vae")

    train_from_page(page, server, "preset=gan&data=digits&epochs=2&hidden=32,16")
    page.get_by_text("random codes through the generator").first.wait_for(timeout=30_000)
    page.get_by_text("Generator vs discriminator").first.wait_for(timeout=30_000)
    assert page.get_by_role("slider").count() >= 1   # play the epochs back
    shot(page, "train-gan")
    # the VAE and the GAN side by side, then the GAN's interpolation between random codes
    timings["generate (VAE and GAN)"] = goto(page, f"{server['url']}/generate", "two random codes", images=3)
    assert page.get_by_text("gan-digits-").count() >= 1
    shot(page, "generate")
    print_timings(timings)


def test_upload_sweep_and_compare_in_the_browser(server, page, stacked_from_the_train_page):
    """An upload from the sidebar, a two-run sweep from the Train page, the Runs page's comparison; then every
    worker that served these jobs and tasks was forked from the server."""
    upload_in_the_browser(page, server)
    timings = {"a two-run sweep (stacked, digits)": sweep_in_the_browser(page, server)}
    timings["runs"] = goto(page, f"{server['url']}/runs", "Compare runs")
    page.get_by_text("Settings against results").wait_for(timeout=30_000)
    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=30_000)
    shot(page, "runs")
    print_timings(timings)
    check_the_workers_came_from_the_server(server)


def check_the_workers_came_from_the_server(server):
    """After jobs and tasks: the workers' fork server was forked from the server (it has the server's command
    line; multiprocessing's own would be a fresh `python -c "from multiprocessing.forkserver import main..."`, its
    resource tracker another),
    and no worker ran the app's script (Streamlit leaves it as the server's __main__, which multiprocessing
    imports into a worker unless its guard stops it: the app's code in bare mode, logged as a warning)."""
    def cmdline(pid):
        return Path(f"/proc/{pid}/cmdline").read_bytes()

    children = bench.app.children(server["pid"])
    assert cmdline(server["pid"]) in [cmdline(c) for c in children]
    assert not [c for c in children if b"multiprocessing" in cmdline(c)]   # the resource tracker: forked too
    log = server["log"].read_text()
    assert "bare mode" not in log, log[-3000:]


def test_a_hosted_visitor_keeps_their_uploads_across_a_reload(hosted_server, browser):
    """The visitor's token lives in a cookie (never in the address): a reload, or a link to their upload by
    its file name, finds their data set again; another visitor's link to it does not."""
    first = browser.new_context(viewport={"width": 1400, "height": 1900})
    page = first.new_page()
    goto(page, hosted_server["url"], "Data set in use")
    deadline = time.time() + 30   # the first visit sets the cookie (a component, then a rerun)
    while not any(c["name"] == "aelab_visitor" for c in first.cookies()) and time.time() < deadline:
        page.wait_for_timeout(200)
    upload_in_the_browser(page, hosted_server)   # a new page load: the visitor is known by the cookie now
    assert page.get_by_text("From your upload").count() >= 1   # no server path in hosted mode
    cookie = next(c for c in first.cookies() if c["name"] == "aelab_visitor")
    assert len(cookie["value"]) >= 40 and cookie["value"] not in page.url

    page.reload()
    goto(page, hosted_server["url"] + "/?data=my-digits.npz", "Data set in use: my-digits")
    assert cookie["value"] not in page.content()

    stranger = browser.new_context(viewport={"width": 1400, "height": 1900}).new_page()
    goto(stranger, hosted_server["url"] + "/?data=my-digits.npz", "Data set in use")
    assert stranger.get_by_text("Data set in use: my-digits").count() == 0
    first.close()



def map_box(page, frame):
    """Where the hover map's canvas is on the page (its frame may sit in an iframe)."""
    box = frame.locator("#map").bounding_box()   # Playwright gives it in the page's coordinates
    return {"x": box["x"], "y": box["y"]}


def hoverable(frame, candidates):
    """Those of ``candidates`` that are the nearest point to their own pixel (no other point drawn on them)."""
    return frame.evaluate("c => c.filter(i => { const [x, y] = pointOnScreen(i);"
                          " return nearestPoint(Math.round(x), Math.round(y)) === i; })", list(candidates))


def hover_points(page, frame, box, indices):
    """Hover each point of ``indices`` in the hover map's frame; each time, wait until its image shows. The
    latencies (ms) the map measured, from each mouse move to the frame that showed its image."""
    for i in indices:
        x, y = frame.evaluate("i => pointOnScreen(i)", i)
        page.mouse.move(box["x"] + 1 + round(x), box["y"] + 1 + round(y))   # the canvas's 1-pixel border
        frame.wait_for_function("i => window.hoverShown === i", arg=i, timeout=5_000)
    frame.wait_for_function("n => window.hoverLatencies.length >= n", arg=len(indices), timeout=5_000)
    return frame.evaluate("() => window.hoverLatencies")


def test_hover_map_shows_any_of_10000_images_at_once(browser):
    """The Latent space page's hover map of the example stacked autoencoder's 10,000 Fashion-MNIST test codes
    (PCA): hovering a point shows its image within 150 ms (p95), a click its 10 nearest neighbours; in 3-D too,
    also after a drag has turned the cloud."""
    import numpy as np

    from aelab import latent
    from aelab.data import load_dataset
    from aelab.runs import find_run
    from pages.shared.hover_map import html

    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    run = find_run("stacked-fashion")
    ds = load_dataset(run.config.data)
    model = run.load_model()
    proj, codes = latent.project_images(model, ds.x_test, "pca", 2)
    payload = latent.hover_map(model, ds.x_test, ds.y_test, ds.class_names, proj.coords, codes)
    assert len(payload["x"]) == 10_000
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    try:
        page.set_content(html(payload))
        page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60_000)
        frame = page.main_frame
        box = map_box(page, frame)
        order = np.argsort(np.asarray(payload["x"]))   # points spread across the map
        points = hoverable(frame, [int(i) for i in order[100:9900:150]])   # about 65 points across the map
        latencies = hover_points(page, frame, box, points)
        p95 = float(np.percentile(latencies, 95))
        print(f"hover map, 10,000 points: hover -> image p50 {np.median(latencies):.1f} ms, p95 {p95:.1f} ms, "
              f"max {max(latencies):.1f} ms over {len(latencies)} hovers")
        assert len(latencies) >= 50 and p95 <= 150
        x, y = page.evaluate("i => pointOnScreen(i)", points[len(points) // 2])
        page.mouse.click(box["x"] + 1 + round(x), box["y"] + 1 + round(y))
        assert page.locator(".neighbour").count() == 10
        first = page.locator(".neighbour").first.inner_text()
        assert re.search(r"d \d+\.\d{3}", first) and any(c in first for c in ds.class_names)
        page.locator("#thumbs").check()   # thumbnails on the map
        shot(page, "hover-map")
        # the same codes in 3-D: drawn nearer over farther, a drag turns the cloud, hovering still shows at once
        coords = latent.project(codes, "pca", 3).coords
        page.close()
        page = browser.new_page(viewport={"width": 1000, "height": 700})   # a fresh page: DATA is a const
        frame = page.main_frame
        page.set_content(html({**payload, **{axis: np.round(coords[:, k], 4).tolist() for k, axis in enumerate("xyz")}}))
        page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60_000)
        assert "Drag: turn" in frame.locator("#howto").inner_text()
        hover_points(page, frame, box, hoverable(frame, [int(i) for i in order[100:9900:300]]))
        before = frame.evaluate("i => pointOnScreen(i)", int(order[5000]))
        page.mouse.move(box["x"] + 300, box["y"] + 260)
        page.mouse.down()
        page.mouse.move(box["x"] + 380, box["y"] + 300, steps=5)
        page.mouse.up()
        after = frame.evaluate("i => pointOnScreen(i)", int(order[5000]))
        assert np.hypot(after[0] - before[0], after[1] - before[1]) > 1   # the cloud turned
        latencies = hover_points(page, frame, box, hoverable(frame, [int(i) for i in order[150:9900:600]]))
        p95 = float(np.percentile(latencies, 95))   # every hover of the 3-D map, before and after the turn
        print(f"hover map in 3-D: p50 {np.median(latencies):.1f} ms, p95 {p95:.1f} ms over {len(latencies)} hovers")
        assert len(latencies) >= 15 and p95 <= 150
        shot(page, "hover-map-3d")
    finally:
        page.close()


def test_every_page_in_chinese(server, browser):
    """A browser that prefers Chinese gets the app in Chinese (the navigation too); Home has no English left
    but names and abbreviations; one screenshot per page with AELAB_SCREENSHOTS=1 (test-artifacts/zh-*.png)."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1300})
    page = context.new_page()
    try:
        goto(page, server["url"], "最近的运行")   # no ?lang=: the browser's language
        nav = page.locator("[data-testid='stSidebarNav']").inner_text()
        assert all(title in nav for title in ("首页", "训练", "重建", "潜在空间", "生成", "预训练", "运行"))
        main = page.evaluate("""() => { const main = document.querySelector("[data-testid='stMain']").cloneNode(true);
            main.querySelectorAll("[data-testid*='Icon'], [aria-hidden='true']").forEach(icon => icon.remove());  // ligatures
            document.body.append(main); const text = main.innerText; main.remove(); return text; }""")
        from aelab.presets import PRESETS

        names = {p.name for p in (ROOT / "examples").iterdir()} | set(PRESETS)
        words = re.sub(r"\S*[/\d]\S*", "", main)   # not paths, nor names with a number (runs made by other tests)
        english = [w for w in re.findall(r"[A-Za-z][A-Za-z-]{3,}", words)
                   if not any(w in n or n in w for n in names)
                   and w not in ("Fashion-MNIST", "fashion-mnist", "digits", "SELU", "LSTM", "DCGAN")]
        assert not english, f"English left on Home: {english[:10]}"
        shot(page, "zh-home")
        for path, title in (("train", "训练"), ("reconstructions", "重建"), ("latent", "潜在空间"),
                            ("generate", "生成"), ("pretrain", "预训练"), ("runs", "运行")):
            goto(page, f"{server['url']}/{path}", "数据集")
            current = page.locator("[data-testid='stSidebarNavLink'][aria-current='page']").inner_text()
            assert title in current, current
            shot(page, f"zh-{path}")
    finally:
        context.close()


def test_two_replicas_on_ray_share_the_runs_and_one_job_limit(ray_head, tmp_path_factory, browser):
    """Two app processes on two ports, on the Ray backend with AELAB_MAX_JOBS=1 and one runs directory: a job
    started on the second waits in line while the first's trains, starts when it is stopped, and both runs
    are in the shared directory."""
    runs = tmp_path_factory.mktemp("shared-runs")
    env = {"AELAB_JOB_BACKEND": "ray", "AELAB_RAY_ADDRESS": ray_head, "AELAB_MAX_JOBS": "1"}
    replicas = [start_server(tmp_path_factory, env, runs) for _ in range(2)]   # both start at once
    pages = []
    try:
        first, second = (wait_healthy(r) for r in replicas)
        pages = [browser.new_context(viewport={"width": 1400, "height": 1900}).new_page() for _ in range(2)]
        for page, replica, link in zip(pages, (first, second), ("epochs=500&batch_size=1",   # minutes
                                                                "epochs=2")):
            goto(page, f"{replica['url']}/train?preset=stacked&data=digits&{link}", "Start training")
            page.get_by_role("button", name="Start training").click()
            if replica is first:
                page.get_by_text(re.compile(r"Epoch \d+/500")).first.wait_for(timeout=120_000)   # it trains
        pages[1].get_by_text("Queued: place 1 in line").wait_for(timeout=30_000)
        shot(pages[1], "ray-queued-on-the-second-replica")
        pages[0].get_by_role("button", name="Stop").click()
        pages[0].get_by_text("saved (stopped)").wait_for(timeout=60_000)
        pages[1].get_by_text("saved (finished)").wait_for(timeout=120_000)
        assert_no_exception(pages[1])
        saved = {run.config.train.epochs: run for run in aelab.RunStore(runs).scan()[0]}   # both replicas' runs
        assert sorted(saved) == [2, 500]
        assert saved[500].meta["status"] == "stopped" and saved[2].meta["status"] == "finished"
    finally:
        for page in pages:
            page.context.close()
        stop_server(*replicas)
