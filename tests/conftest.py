import contextlib
import gzip
import io
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from aelab.data import load_dataset

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    """Write an IDX file as published (big-endian header, uint8 data), gzipped or plain."""
    magic = 0x00000803 if array.ndim == 3 else 0x00000801
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def png_bytes(array: np.ndarray, mode: str = "L", fmt: str = "PNG") -> bytes:
    """An image file (PNG, JPEG, GIF, ...) of a uint8 array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buf, format=fmt)
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A zip archive of {member name: content}, names taken as given (hostile ones included)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing browser test leaves a screenshot of its page: test-artifacts/failed-TEST.png."""
    report = yield
    page = getattr(item, "funcargs", {}).get("page")
    if report.when == "call" and report.failed and page is not None:
        artifacts = Path(__file__).resolve().parents[1] / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        try:
            page.screenshot(path=str(artifacts / f"failed-{item.name}.png"), full_page=True)
        except Exception as e:   # a closed page or browser: the report says why the test failed
            report.sections.append(("screenshot", f"no screenshot: {e}"))
    return report


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    """A tiny Fashion-MNIST-shaped IDX directory: 60 train and 20 test 28x28 images."""
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(60) % 10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10)
    return tmp_path


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_classifier(digits, tmp_path_factory):
    """The quality measure's classifier (preset `classifier`, 15 epochs) on digits, run `clf`: trained once for
    the session, read by the quality tests and the pages that score samples."""
    import aelab

    cfg = aelab.preset("classifier", "digits")
    cfg.train.epochs = 15
    return aelab.train(cfg, runs_dir=tmp_path_factory.mktemp("clf"), name="clf", dataset=digits).run


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch, tmp_path_factory):
    """No test reads the developer's runs or data cache by accident."""
    monkeypatch.delenv("AELAB_DATA_DIR", raising=False)
    monkeypatch.setenv("AELAB_RUNS_DIR", str(tmp_path_factory.mktemp("runs")))


@pytest.fixture
def app_router(monkeypatch):
    """AppTest resets Streamlit's legacy `pages/` detection before every run, which would run page files
    without the router after the first run. A real server leaves it after its first request (see
    pages.shared.sidebar.through_router), so keep every AppTest run on the router, as the server does."""
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def init_then_router(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init_then_router)


def app(page: str | None = None, query: dict | None = None, timeout: float = 120, **state):
    """An AppTest of the whole app (router and sidebar) on the digits, with ``state`` in the session and
    ``query`` in the address, switched to ``page``; asserts that no exception reached the page."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=timeout)
    at.session_state["dataset"] = "digits"
    for k, v in state.items():
        at.session_state[k] = v
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at



def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m aelab ARGS`` run in this process (no new interpreter, no second import of torch): its exit
    status (a usage error's too), stdout and stderr, as subprocess.run would give them."""
    from aelab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args)) or 0
        except SystemExit as stop:   # argparse's usage errors
            code = stop.code if isinstance(stop.code, int) else 1
    return subprocess.CompletedProcess(["python", "-m", "aelab", *args], code, out.getvalue(), err.getvalue())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """A Ray head on 127.0.0.1 for the whole test session (about 4 s to start), its address; stopped at the
    end with everything it started. Its workers import aelab from this checkout (PYTHONPATH)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt")
    port = free_port()
    ports = ["--port", str(port),
             "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
             "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port()),
             "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port())]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "RAY_USAGE_STATS_ENABLED": "0"}
    log = (tmp_path_factory.mktemp("ray") / "head.log").open("w")
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
                             "--node-ip-address", "127.0.0.1", "--num-cpus", "4", "--include-dashboard", "false",
                             "--disable-usage-stats", *ports], env=env, cwd=root, stdout=log, stderr=log,
                            start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 60
    while subprocess.run([str(Path(sys.executable).with_name("ray")), "status", "--address", address],
                         capture_output=True, env=env).returncode != 0:
        assert head.poll() is None and time.time() < deadline, Path(log.name).read_text()[-2000:]
        time.sleep(0.5)
    yield address
    os.killpg(head.pid, signal.SIGTERM)   # --block: the head stops what it started, if it can within a second
    try:
        head.wait(1)   # its graceful drain takes up to 30 s, which the suite does not wait for
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)   # its processes share its group: nothing is left behind
        head.wait(10)
