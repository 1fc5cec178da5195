"""The app under measurement: cold start, Start -> first live point, and the server's memory (RSS)."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]


def status_mb(pid: int) -> dict[str, float]:
    """The memory lines of /proc/``pid``/status (VmRSS, RssAnon, ...) in MiB, from one read."""
    return {line.split(":", 1)[0]: int(line.split()[1]) / 1024
            for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.endswith(" kB")}


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of ``pid`` in MiB: VmRSS (all), or RssAnon (heap and stacks, without the mapped
    files such as torch's CUDA libraries, which the kernel can drop and share between processes)."""
    return status_mb(pid).get(field, 0.0)


def pss_anon_mb(pid: int) -> float:
    """The anonymous memory of ``pid`` in MiB with each page shared with other processes (a forked worker's pages
    of its fork server) counted as its share: summed over processes, each page counts once."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss_Anon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, whichever of its threads started them: /proc lists a child under
    the thread that forked it."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:   # the thread ended meanwhile
            pass
    return found


def descendants(pid: int) -> list[int]:
    """The server's processes: its children (the workers' fork server, multiprocessing's resource tracker) and
    theirs (the workers)."""
    found = children(pid)
    return found + [d for c in found for d in descendants(c)]


class RssSampler(threading.Thread):
    """Samples the RSS of a process and of its descendants (the server and its workers) every 0.1 s, and their
    anonymous PSS every ``pss_every`` s while ``pss`` is set; ``peak(since)`` is the largest sample of the
    server after ``since``, ``peak_total`` of all together.

    PSS comes from /proc/<pid>/smaps_rollup, which walks every mapping of a process: 64 ms of CPU for the idle
    server's three processes here. Read every 0.1 s it took half a core from the app it measured (a t-SNE task
    1.4x slower than the library call); /proc/<pid>/status takes 0.3 ms."""

    def __init__(self, pid: int, pss_every: float = 1.0):
        super().__init__(daemon=True)
        self.pid, self.samples, self.running, self.pss, self.pss_every = pid, [], True, True, pss_every

    def run(self):
        pss_read = -float("inf")
        while self.running:
            now = time.perf_counter()
            row, read_pss = {}, self.pss and now - pss_read >= self.pss_every
            if read_pss:
                pss_read = now
            for pid in [self.pid, *descendants(self.pid)]:
                try:
                    memory = status_mb(pid)
                    row[pid] = (memory["VmRSS"], memory["RssAnon"], pss_anon_mb(pid) if read_pss else None)
                except KeyError:   # a process that has ended and not yet been waited for holds no memory
                    pass
                except OSError:
                    if pid == self.pid:
                        return
            self.samples.append((now, row))
            time.sleep(0.1)

    def peak(self, since: float, anon: bool = False) -> float:
        i = 1 if anon else 0   # each sample is (RSS, RssAnon, anonymous PSS)
        return max((row[self.pid][i] for t, row in self.samples if t >= since and self.pid in row), default=0.0)

    def peak_total(self, since: float, anon: bool = False, shared_once: bool = False) -> float:
        """The largest sum over the processes of RSS, RssAnon (``anon``), or anonymous PSS (``shared_once``)."""
        i = 2 if shared_once else 1 if anon else 0
        return max((sum(v[i] for v in row.values()) for t, row in self.samples
                    if t >= since and all(v[i] is not None for v in row.values())), default=0.0)

    def peak_workers(self, since: float) -> list[tuple[float, float]]:
        """(peak anonymous RSS, peak RSS) in MiB of each of the server's processes seen after ``since`` (the workers,
        their fork server, multiprocessing's resource tracker), the largest first."""
        out: dict[int, tuple[float, float]] = {}
        for t, row in self.samples:
            for pid, (rss, anon, _) in row.items():
                if t >= since and pid != self.pid:
                    old = out.get(pid, (0.0, 0.0))
                    out[pid] = (max(old[0], anon), max(old[1], rss))
        return sorted(out.values(), reverse=True)


class Server:
    """``root``'s app served on a free loopback port, with its own runs directory: started as ``make run`` does
    (``launcher`` ``pages.shared.serve``; by default where ``root`` has it, an older checkout may not), or by
    plain ``streamlit run`` (``launcher`` ``streamlit``)."""

    def __init__(self, root: Path = ROOT, env: dict | None = None, launcher: str | None = None):
        if launcher is None:
            launcher = "pages.shared.serve" if (root / "pages" / "shared" / "serve.py").exists() else "streamlit"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.runs = Path(tempfile.mkdtemp(prefix="aelab-bench-runs-"))
        self.log = open(self.runs.parent / f"{self.runs.name}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", launcher, "run", str(root / "streamlit_app.py"), "--server.port",
             str(self.port), "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=root, env={**os.environ, "AELAB_RUNS_DIR": str(self.runs), **(env or {})},
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=2).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.3)
        self.close()
        raise RuntimeError("the server did not become healthy within 120 s")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def start_training(page, url: str) -> tuple[float, float]:
    """Open the Train page for 3 epochs of `stacked` on Fashion-MNIST, wait until it is drawn (its empty loss
    chart too), click Start: seconds from the click, and from opening the page, until the live chart shows its
    first point (the empty chart has no trace: its reference line is a shape)."""
    opened = time.perf_counter()
    page.goto(url + "/train?preset=stacked&data=fashion-mnist&epochs=3")
    start = page.get_by_role("button", name="Start training")
    start.wait_for(timeout=60_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    started = time.perf_counter()
    start.click()
    page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=120_000)
    return time.perf_counter() - started, time.perf_counter() - opened


def library_tsne(runs_dir: Path, n: int = 10_000) -> float:
    """Seconds for the app's projection task (load the newest run and its data, encode ``n`` test images, t-SNE
    with the page's default settings) as a plain call in this process, right after the app ran it: the same
    codes, the same host moment, neither server nor browser busy."""
    import aelab
    from aelab import tasks

    run = aelab.RunStore(runs_dir, read_only=True).scan()[0][0]
    started = time.perf_counter()
    tasks.projection(run, n, "tsne", 2, seed=0, perplexity=30.0, learning_rate="auto", max_iter=750)
    return time.perf_counter() - started


def measure(extra_env: dict | None = None, tsne: bool = True, launcher: str | None = None) -> dict:
    """Start a server (with ``extra_env``), train ``stacked`` for 3 epochs from the page, again from a second
    visitor's page once the server is warm, then (``tsne``)
    project 10,000 codes with t-SNE; timings in seconds, the server's RSS in MiB, and while training, the
    anonymous memory of the server and its processes together (RssAnon summed, and PSS: a shared page once) and
    of each process."""
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1900})
        started = time.perf_counter()
        server = Server(env=extra_env, launcher=launcher)
        url = server.url
        sampler = RssSampler(server.process.pid)
        sampler.start()
        try:
            out["rss_idle_mb"] = rss_mb(server.process.pid)
            page.goto(url)
            page.get_by_text("Data set in use").wait_for(timeout=120_000)
            out["cold_start_s"] = time.perf_counter() - started

            t0 = time.perf_counter()
            out["first_point_s"], out["open_to_first_point_s"] = start_training(page, url)
            page.get_by_text("saved (finished)").wait_for(timeout=300_000)
            out["rss_train_mb"] = sampler.peak(t0)
            out["rss_anon_train_mb"] = sampler.peak(t0, anon=True)
            out["rss_anon_train_total_mb"] = sampler.peak_total(t0, anon=True)
            out["pss_anon_train_total_mb"] = sampler.peak_total(t0, shared_once=True)
            out["rss_train_workers_mb"] = sampler.peak_workers(t0)
            # a second visitor (a new session) once the server is warm: the spare worker taken by the first job
            # was replaced when that job started, and has imported torch by now
            second = browser.new_page(viewport={"width": 1400, "height": 1900})
            out["first_point_warm_s"], out["open_to_first_point_warm_s"] = start_training(second, url)
            second.get_by_text("saved (finished)").wait_for(timeout=300_000)
            second.close()
            if not tsne:
                return out

            # a new visitor's page: its active run is the newest, the second visitor's
            sampler.pss = False   # the server's RSS only, the cheap read
            t0 = time.perf_counter()
            third = browser.new_page(viewport={"width": 1400, "height": 1900})
            third.goto(url + "/latent?method=tsne&n=10000")
            third.locator(".js-plotly-plot .legendtext").first.wait_for(timeout=600_000)
            out["tsne_10k_s"] = time.perf_counter() - t0
            out["rss_tsne_mb"] = sampler.peak(t0)
            out["rss_anon_tsne_mb"] = sampler.peak(t0, anon=True)
            title = third.get_by_text(re.compile(r"computed in [\d.]+ s")).first
            title.wait_for(timeout=60_000)
            computed = re.search(r"computed in ([\d.]+) s", title.text_content())
            out["tsne_10k_task_s"] = float(computed.group(1)) if computed else float("nan")
            out["tsne_10k_library_s"] = library_tsne(server.runs)
        finally:
            sampler.running = False
            server.close()
            browser.close()
    return out


if __name__ == "__main__":
    print(measure())
