"""Load benchmark: many visitors on one server while jobs train, and in-app vs CLI training speed.

    python -m bench.load --visitors 5 --jobs 1 --seconds 60 --json

Starts a real server on 127.0.0.1 (with a fresh runs directory, the shipped example runs and the usual
settings), then

1. speed: trains ``stacked`` for ``--epochs`` epochs from the Train page with the browser watching, and the
   same from the CLI, ``--rounds`` times each, interleaved (this machine's speed drifts); s/epoch is each run's
   median epoch time, as saved in its config.json;
2. load: ``--jobs`` browser contexts start a long ``stacked`` job each and watch it, while ``--visitors``
   contexts (one Chromium) open the six pages (or those of ``--pages``) in turn for ``--seconds`` seconds.
   A page load counts from the click in the navigation until its title shows, the script is not running,
   nothing is stale and no spinner or progress bar is visible (a page waiting for a projection is not done).

Prints one JSON object: ``p50_s``, ``p95_s``, ``max_s`` and ``loads`` over the page loads, ``errors`` (an
exception on the page, a lost connection, or a load past 60 s), ``server_rss_mib`` and ``workers_rss_mib``
(peaks; the workers' summed), ``cpu_s`` (CPU seconds of the server, its workers and the browser during
the load), ``by_page`` (loads, p50 and max per page), ``speed`` (s/epoch in the app and from the CLI: min,
median, max, the ratio of medians, and the cores the server, the workers and the browser used while a job
was watched). Bounded: at most 20 visitors, 4 jobs, 600 s; only loopback traffic.

``--root DIR`` runs another checkout of AE Lab (same virtual environment) to measure a version before a change.
``--backend ray`` runs the jobs and tasks on a Ray cluster started here for the measurement (a head and
``--ray-workers`` worker nodes of one CPU each, on 127.0.0.1: bench.ray_cluster); ``--throughput N`` also
times N short training jobs (``stacked`` on digits, 3 epochs, two at a time) through the backend's queue,
and reports jobs per minute.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.app import CHROMIUM_ARGS, Server, descendants, rss_mb
from bench.ray_cluster import local_cluster

ROOT = Path(__file__).resolve().parents[1]
PAGES = [("Home", "AE Lab"), ("Train", "Train"), ("Reconstructions", "Reconstructions"),
         ("Latent space", "Latent space"), ("Generate", "Generate"), ("Runs", "Runs")]   # (link, title)
LOAD_TIMEOUT_S = 60
MAX_VISITORS, MAX_JOBS, MAX_SECONDS = 20, 4, 600

# True once the page titled `title` is drawn and idle: the script is not running, no element is stale
# (left over from the page before), and no spinner or progress bar is waiting for a result.
IDLE_JS = """title => {
  const h1 = document.querySelector("[data-testid='stMain'] h1");
  if (!h1 || !h1.innerText.startsWith(title)) return false;
  if (document.querySelector("[data-testid='stStatusWidget']")) return false;
  if (document.querySelector("[data-stale='true']")) return false;
  if (document.querySelector("[data-testid='stSpinner'], [data-testid='stProgress']")) return false;
  return true;
}"""
BROKEN_JS = """() => !!document.querySelector("[data-testid='stException']") ||
  document.body.innerText.includes("Connection error")"""


def children_rss_mib(pid: int) -> float:
    """The summed RSS of ``pid``'s descendants (a server's workers, their fork server, multiprocessing's resource
    tracker; a page the workers share with their fork server counted in each)."""
    total = 0.0
    for child in descendants(pid):
        try:
            total += rss_mb(child)
        except OSError:   # it ended meanwhile
            pass
    return total


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime + stime


class Peaks(threading.Thread):
    """Every 0.2 s: the server's RSS and its workers' summed RSS (keeping the peaks), and the CPU seconds
    spent by the server, its workers and the browser's processes since the start."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.server, self.workers, self.running = 0.0, 0.0, True
        self._seen: dict[int, tuple[str, float, float]] = {}   # pid -> (kind, CPU seconds at start, latest)

    def run(self):
        while self.running:
            try:
                self.server = max(self.server, rss_mb(self.pid))
                self.workers = max(self.workers, children_rss_mib(self.pid))
            except OSError:
                return
            self._sample_cpu()
            time.sleep(0.2)

    def _sample_cpu(self) -> None:
        kinds = {pid: "browser" for pid in browser_pids()}
        kinds[self.pid] = "server"
        for child in descendants(self.pid):
            kinds[child] = "workers"
        for pid, kind in kinds.items():
            try:
                now = _cpu_seconds(pid)
            except OSError:
                continue
            _, start, _ = self._seen.get(pid, (kind, now, now))
            self._seen[pid] = (kind, start, now)

    def cpu(self) -> dict[str, float]:
        """CPU seconds per kind of process since sampling began (a worker counts from its first sample)."""
        out = {"server": 0.0, "workers": 0.0, "browser": 0.0}
        for kind, start, latest in self._seen.values():
            out[kind] += latest - start
        return {k: round(v, 1) for k, v in out.items()}


def browser_pids() -> set[int]:
    """The processes this benchmark started, but for the server (whose entries the caller overwrites):
    Chromium's, with a renderer per context."""
    me, pids = os.getpid(), set()
    parents = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                parents[int(p.name)] = int(p.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor and ancestor != me:
            ancestor = parents.get(ancestor)
        if ancestor == me:
            pids.add(pid)
    return pids


async def wait_idle(page, title: str, timeout_s: float) -> None:
    """Until the page titled ``title`` is idle, twice 0.3 s apart (a rerun may start just after)."""
    deadline = time.perf_counter() + timeout_s
    while True:
        left_ms = max(1, int((deadline - time.perf_counter()) * 1000))
        await page.wait_for_function(IDLE_JS, arg=title, timeout=left_ms, polling=50)
        await page.wait_for_timeout(300)
        if await page.evaluate(IDLE_JS, title):
            return


async def start_job(page, url: str, epochs: int) -> None:
    await page.goto(f"{url}/train?preset=stacked&data=fashion-mnist&epochs={epochs}")
    await wait_idle(page, "Train", 120)
    await page.get_by_role("button", name="Start training").click()


async def speed(browser, server: Server, root: Path, epochs: int, rounds: int) -> dict:
    """s/epoch of ``stacked`` trained from the watched Train page and from the CLI, interleaved."""
    app, cli, watching = [], [], []
    for _ in range(rounds):
        ctx = await browser.new_context(viewport={"width": 1400, "height": 1900})
        page = await ctx.new_page()
        before = set(server.runs.iterdir())
        await start_job(page, server.url, epochs)
        peaks, started = Peaks(server.process.pid), time.perf_counter()
        peaks.start()
        await page.get_by_text("saved (finished)").wait_for(timeout=600_000)
        peaks.running = False
        watching.append({k: round(v / (time.perf_counter() - started), 3) for k, v in peaks.cpu().items()})
        await ctx.close()
        (run,) = set(server.runs.iterdir()) - before
        app.append(json.loads((run / "config.json").read_text())["meta"]["seconds_per_epoch"])
        with tempfile.TemporaryDirectory() as runs:
            out = subprocess.run([sys.executable, "-m", "aelab", "train", "--preset", "stacked", "--data",
                                  "fashion-mnist", "--epochs", str(epochs), "--no-eval", "--json", "--runs-dir",
                                  runs], cwd=root, capture_output=True, text=True, check=True)
        cli.append(json.loads(out.stdout)["seconds_per_epoch"])

    def spread(values):
        return {"min": min(values), "median": statistics.median(values), "max": max(values)}

    return {"epochs": epochs, "rounds": rounds, "app_s_per_epoch": spread(app), "cli_s_per_epoch": spread(cli),
            "app_over_cli": statistics.median(app) / statistics.median(cli),
            "cores_while_watched": watching}   # CPU seconds per second of the server, workers, browser


async def visitor(browser, url: str, until: float, first_page: int, loads: list, errors: list,
                  pages: list[tuple[str, str]] = PAGES) -> None:
    """One visitor: opens the app, then ``pages`` in turn (from page ``first_page``) until ``until``."""
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await ctx.new_page()
    try:
        await page.goto(url)
        await wait_idle(page, "AE Lab", 120)
        i = first_page
        while time.perf_counter() < until:
            link, title = pages[i % len(pages)]
            i += 1
            started = time.perf_counter()
            try:
                await page.get_by_role("link", name=link, exact=True).first.click(timeout=LOAD_TIMEOUT_S * 1000)
                await wait_idle(page, title, LOAD_TIMEOUT_S)
                loads.append((time.perf_counter() - started, title))
                if await page.evaluate(BROKEN_JS):
                    errors.append(f"{title}: an exception or a lost connection on the page")
            except Exception as e:   # a timeout: the page never became idle
                errors.append(f"{title}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                await page.goto(url)
    finally:
        await ctx.close()


async def load(browser, server: Server, visitors: int, jobs: int, seconds: float,
               pages: list[tuple[str, str]] = PAGES) -> dict:
    """Page-load times of ``visitors`` browsing ``pages`` at once while ``jobs`` train (each watched by its
    own context)."""
    watchers = []
    for _ in range(jobs):
        ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
        page = await ctx.new_page()
        await start_job(page, server.url, epochs=500)
        await page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=120_000)   # it trains
        watchers.append(ctx)
    peaks = Peaks(server.process.pid)
    peaks.start()
    loads, errors = [], []
    try:
        until = time.perf_counter() + seconds
        await asyncio.gather(*(visitor(browser, server.url, until, v, loads, errors, pages) for v in range(visitors)))
    finally:
        peaks.running = False
        for ctx in watchers:
            await ctx.close()
    by_page = {title: [s for s, t in loads if t == title] for _, title in pages}
    by_page = {title: {"loads": len(times), "p50_s": round(statistics.median(times), 3),
                       "max_s": round(max(times), 3)} for title, times in by_page.items() if times}
    loads = sorted(s for s, _ in loads)
    p95 = loads[min(len(loads) - 1, int(0.95 * len(loads)))] if loads else float("nan")
    return {"visitors": visitors, "jobs": jobs, "seconds": seconds, "loads": len(loads), "by_page": by_page,
            "p50_s": round(statistics.median(loads), 3) if loads else float("nan"), "p95_s": round(p95, 3),
            "max_s": round(loads[-1], 3) if loads else float("nan"), "errors": len(errors),
            "error_samples": errors[:5], "server_rss_mib": round(peaks.server, 1),
            "workers_rss_mib": round(peaks.workers, 1), "cpu_s": peaks.cpu()}


def throughput(n: int, env: dict) -> dict:
    """Wall time of ``n`` short jobs (stacked on digits, 3 epochs) queued at once, two running at a time, through
    the job system of ``env`` (the local workers, or the Ray cluster)."""
    import aelab
    from aelab.jobs import make_registry

    os.environ.update(env)
    registry = make_registry(max_jobs=2, max_per_visitor=n)
    cfg = aelab.preset("stacked", "digits")
    cfg.train.epochs = 3
    try:
        with tempfile.TemporaryDirectory() as runs:
            started = time.perf_counter()
            jobs = [registry.start(cfg, runs, owner="bench") for _ in range(n)]
            assert all(job.join(600) for job in jobs)
            seconds = time.perf_counter() - started
            statuses = [job.snapshot().status for job in jobs]
    finally:
        registry.close()
    return {"jobs": n, "seconds": round(seconds, 1), "jobs_per_minute": round(60 * n / seconds, 2),
            "finished": statuses.count("finished"),
            "first_point_s": [round(job.snapshot().first_point_seconds or float("nan"), 2) for job in jobs]}


async def measure(args) -> dict:
    if args.backend == "ray":
        with local_cluster(args.ray_workers) as address:
            return await _measure(args, {"AELAB_JOB_BACKEND": "ray", "AELAB_RAY_ADDRESS": address})
    return await _measure(args, {})


async def _measure(args, backend_env: dict) -> dict:
    from playwright.async_api import async_playwright

    root = args.root.resolve()
    server = Server(root, {"AELAB_MAX_JOBS": str(max(2, args.jobs)), **backend_env})
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                               args=CHROMIUM_ARGS)
            try:
                result = {"root": str(root), "commit": _commit(root), "backend": args.backend,
                          "ray_workers": args.ray_workers if args.backend == "ray" else None}
                if args.epochs:
                    result["speed"] = await speed(browser, server, root, args.epochs, args.rounds)
                result.update(await load(browser, server, args.visitors, args.jobs, args.seconds, args.pages))
            finally:
                await browser.close()
    finally:
        server.close()
    if args.throughput:
        result["throughput"] = throughput(args.throughput, backend_env)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked against the benchmark's bounds."""
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    p.add_argument("--visitors", type=int, default=5)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--epochs", type=int, default=4, help="epochs of each in-app / CLI speed run (0: skip)")
    p.add_argument("--rounds", type=int, default=2, help="speed runs of each kind, interleaved")
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout of AE Lab to serve")
    p.add_argument("--pages", type=_pages, default=PAGES,
                   help="the pages the visitors open in turn, by their link names, comma-separated (default: all six)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="the job system's backend (ray: a local cluster started for the measurement)")
    p.add_argument("--ray-workers", type=int, default=2, help="worker nodes of the local Ray cluster (1 CPU each)")
    p.add_argument("--throughput", type=int, default=0, help="also time this many short jobs through the queue")
    p.add_argument("--json", action="store_true", help="print the JSON object on one line")
    args = p.parse_args(argv)
    if not (1 <= args.visitors <= MAX_VISITORS and 0 <= args.jobs <= MAX_JOBS and 0 < args.seconds <= MAX_SECONDS
            and 1 <= args.ray_workers <= 4 and 0 <= args.throughput <= 8):
        p.error(f"bounds: 1-{MAX_VISITORS} visitors, 0-{MAX_JOBS} jobs, up to {MAX_SECONDS} s, 1-4 Ray workers, "
                "0-8 throughput jobs")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    result = asyncio.run(measure(args))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return result


def _pages(links: str) -> list[tuple[str, str]]:
    titles = dict(PAGES)
    chosen = [link.strip() for link in links.split(",") if link.strip()]
    unknown = [link for link in chosen if link not in titles]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"pages are some of: {', '.join(titles)}")
    return [(link, titles[link]) for link in chosen]


def _commit(root: Path) -> str:
    out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip()


if __name__ == "__main__":
    main()
