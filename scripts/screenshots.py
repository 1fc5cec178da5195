"""Take the documentation's screenshots (docs/images/*.png) of the example runs on Fashion-MNIST.

Starts `streamlit run` on a free port with an empty runs directory (so the pages show the shipped
examples), opens each page in Debian's Chromium and saves a screenshot. Usage:
`python scripts/screenshots.py [page ...]` with pages among generate, home, latent, pretrain, upload, hashing,
reduction, beta, sweep, settings, continue (default: all). hashing and reduction are the Latent space page's chapter-17
sections, cropped. beta trains a VAE with a cyclical β from the Train page; sweep runs a 2 x 2 sweep (learning
rate x code size) from it, and settings shows those runs on the Runs page (so it comes after sweep).
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "images"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-dev-shm-usage"]
# page -> (path, text that says it is ready); a fresh session's active run is the newest example
PAGES = {"generate": ("/generate", "What do these numbers measure?"), "home": ("/", "Recent runs"),
         "latent": ("/latent", "How the codes moved during training"),
         "pretrain": ("/pretrain", "fine-tuning beat training from scratch"), "upload": ("/", "Recent runs"),
         "hashing": ("/latent", "Semantic hashing: codes as bits"),   # the newest example: hashing-fashion
         "reduction": ("/latent", "Reconstruction error against code size"),
         "beta": ("/train?preset=vae&data=fashion-mnist&epochs=6&beta_schedule=cyclical&beta_epochs=2",
                  "Start training"),
         "sweep": ("/train?preset=stacked&data=fashion-mnist&epochs=2", "Start training"),
         "settings": ("/runs", "Settings against results"),
         "continue": ("/runs", "Continue training")}
SECTIONS = {"hashing": ".st-key-hashing", "reduction": ".st-key-reduction",   # shot alone: the pages' keyed
            "settings": ".st-key-settings_results", "beta": ".st-key-live_view",  # containers
            "sweep": ".st-key-sweep_panel", "continue": ".st-key-continue_training"}


def train_vae_with_a_beta_schedule(page) -> None:
    """Start the link's VAE and wait for the saved run: the page then plays back β and the losses."""
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("saved (finished)").wait_for(timeout=600_000)


def run_a_sweep(page) -> None:
    """Codes of 10 and 30 against learning rates 0.5 and 1.5: four runs, queued, then compared."""
    time.sleep(2)
    page.get_by_text("Sweep: several runs").click()
    time.sleep(2)
    for i, (setting, values) in enumerate((("latent", "10, 30"), ("lr", "0.5, 1.5")), start=1):
        page.get_by_role("combobox", name=f"Setting {i}").click()   # a selectbox: type to filter, then pick
        page.keyboard.type(setting)
        page.get_by_role("option", name=setting, exact=True).click()
        time.sleep(1.5)
        box = page.get_by_role("textbox", name=f"Values of {setting}")
        box.fill(values)
        box.press("Enter")
        time.sleep(1.5)
    page.get_by_role("button", name="Start the sweep (4 runs)").click()
    page.get_by_text("Compare them on the Runs page").wait_for(timeout=900_000)


def chart_the_sweep(page) -> None:
    """Drop the settings the sweep kept fixed from the chart's axes and add the learning rate it varied."""
    axes = page.locator(".st-key-hp_axes")
    for fixed in ("arch", "code_activation", "noise", "noise_level"):
        axes.get_by_role("button", name=f"Remove {fixed}", exact=True).click()
        time.sleep(1.5)
    axes.get_by_role("combobox").click()
    page.keyboard.type("lr")
    page.get_by_role("option", name="lr", exact=True).click()
    time.sleep(1.5)
    page.keyboard.press("Escape")


ACTIONS = {"beta": train_vae_with_a_beta_schedule, "sweep": run_a_sweep, "settings": chart_the_sweep}


def example_zip() -> bytes:
    """200 Fashion-MNIST test images as PNG files in one folder per class, the way a user would zip them."""
    import io
    import zipfile

    from PIL import Image

    sys.path.insert(0, str(ROOT))
    import aelab

    ds = aelab.load_dataset("fashion-mnist")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(200):
            png = io.BytesIO()
            Image.fromarray(ds.x_test[i, 0].numpy()).save(png, format="PNG")
            z.writestr(f"my-clothes/{ds.class_names[ds.y_test[i]].replace('/', '-')}/{i}.png", png.getvalue())
    return buf.getvalue()


def main(pages: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AELAB_RUNS_DIR": tempfile.mkdtemp(prefix="aelab-shots-")}
    server = subprocess.Popen([sys.executable, "-m", "pages.shared.serve", "run", "streamlit_app.py", "--server.port",
                               str(port), "--server.headless", "true"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            for name in pages or PAGES:
                path, ready = PAGES[name]
                tall = name in ("latent", "pretrain", *SECTIONS)
                page.set_viewport_size({"width": 1400, "height": 2600 if tall else 1300})
                page.goto(url + path)
                page.get_by_text(ready).first.wait_for(timeout=180_000)
                if name == "upload":   # the sidebar's upload panel, after adding a zip of images
                    page.get_by_text("Add your own images").click()
                    page.locator("input[type='file']").set_input_files(
                        {"name": "my-clothes.zip", "mimeType": "application/zip", "buffer": example_zip()})
                    page.get_by_role("button", name="Add data set").click()
                    page.get_by_text("Added").first.wait_for(timeout=60_000)
                if name in ACTIONS:
                    ACTIONS[name](page)
                if name == "reduction":   # the book's demo too
                    page.get_by_text("The book's demo: PCA with a linear autoencoder").click()
                    page.get_by_text("Its plane is PCA's to within").wait_for(timeout=60_000)
                page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                                       timeout=180_000)
                if name == "pretrain":   # its chart and table draw after the script ends
                    page.locator(".js-plotly-plot .legendtext").first.wait_for(timeout=60_000)
                    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=60_000)
                time.sleep(2)
                DOCS.mkdir(parents=True, exist_ok=True)
                if name in SECTIONS:
                    section = page.locator(SECTIONS[name])
                    section.scroll_into_view_if_needed()
                    time.sleep(2)   # the table is drawn on a canvas once it is in view
                    section.screenshot(path=str(DOCS / f"{name}.png"))
                else:
                    page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)
                print(f"docs/images/{name}.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main(sys.argv[1:])
