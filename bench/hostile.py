"""Hostile files and what reading them costs: `python -m bench.hostile [--quick]`.

Builds the files an audit used against AE Lab (a 1 GB array compressed into 1 MB, an .npy header that
declares 6.7 TB, a 100 MB zip of 1-bit 4096x4096 PNGs, a link to /dev/zero, a FIFO, a model of 50,000 x
50,000 units) and reads each in a fresh process under RLIMIT_DATA (not RLIMIT_AS: importing torch maps
gigabytes of address space it never uses), reporting the outcome, the peak RSS over the process's
baseline (after its imports) and the CPU seconds. tests/test_hostile.py checks the same numbers.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA_HEADROOM_MB = 600   # RLIMIT_DATA: the process's data size after its imports, plus this

_MEASURE = textwrap.dedent("""
    import json, resource, sys, time
    import aelab, aelab.data, aelab.uploads, aelab.models   # imports first: they are the baseline
    import torch, torch.nn.functional  # noqa
    from aelab.config import with_overrides

    def data_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmData:"):
                return int(line.split()[1])

    headroom = int(sys.argv[2]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (data_kb() * 1024 + headroom, resource.RLIM_INFINITY))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
    outcome = "accepted"
    try:
        exec(sys.argv[1])
    except Exception as e:
        outcome = f"{type(e).__name__}: {e}"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"outcome": outcome, "code": getattr(sys.exc_info()[1], "code", None),
                      "rss_mb": (usage.ru_maxrss - base_rss) / 1024,
                      "cpu_s": usage.ru_utime + usage.ru_stime - cpu0, "wall_s": time.perf_counter() - wall0}))
""")


def measure(statement: str, env: dict | None = None, timeout: float = 300) -> dict:
    """Run ``statement`` in a fresh Python under RLIMIT_DATA; {outcome, rss_mb (over baseline), cpu_s, wall_s}."""
    p = subprocess.run([sys.executable, "-c", _MEASURE, statement, str(DATA_HEADROOM_MB)], capture_output=True,
                       text=True, cwd=ROOT, timeout=timeout, env={**os.environ, **(env or {})})
    if p.returncode != 0:
        raise RuntimeError(f"the measuring process failed ({p.returncode}): {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- builders
def npy_header(shape: tuple[int, ...], dtype=np.uint8) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": shape})
    return buf.getvalue()


def zeros_npz(path: Path, shape: tuple[int, ...]) -> Path:
    """An .npz whose 'images' member is an all-zero uint8 array of ``shape``, written in chunks (a 1 GB
    array compresses to about 1 MB and is never held in memory here)."""
    chunk = bytes(16 << 20)
    left = int(np.prod(shape))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("images.npy", "w", force_zip64=True) as f:
        f.write(npy_header(shape))
        while left:
            f.write(chunk[:min(left, len(chunk))])
            left -= min(left, len(chunk))
    return path


def header_bomb(path: Path, shape=(100_000, 4096, 4096)) -> Path:
    """An .npz of a few hundred bytes whose .npy header declares ``shape`` (6.7 TB of uint8) and holds nothing."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("images.npy", npy_header(shape))
    return path


def one_bit_png(side: int = 4096) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_zip(path: Path, count: int, side: int = 4096, classes: int = 2) -> Path:
    """A zip of ``count`` 1-bit PNGs of side x side pixels (about 2 KB each), in ``classes`` folders."""
    png = one_bit_png(side)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for i in range(count):
            z.writestr(f"c{i % classes}/{i}.png", png)
    return path


READ = "aelab.data.load_file({path!r})"


def cases(root: Path, quick: bool) -> dict[str, tuple[str, str]]:
    """{name: (what, statement to measure)}, building the files under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    big_png = png_zip(root / "pngs-accepted.zip", 60)                  # 1.0 G source pixels: decoded
    out = {
        "1 npz (240, 2048, 2048) uint8, 1 MB": READ.format(path=str(zeros_npz(root / "zeros.npz",
                                                                              (240, 2048, 2048)))),
        "2 npz header declaring (100000, 4096, 4096)": READ.format(path=str(header_bomb(root / "bomb.npz"))),
        "3a zip of 60 1-bit 4096x4096 PNGs (1.0 G pixels)": READ.format(path=str(big_png)),
        "4a link to /dev/zero named z.npz": READ.format(path=str(_link(root / "z.npz", "/dev/zero"))),
        "4b FIFO named f.npz": READ.format(path=str(_fifo(root / "f.npz"))),
        "11 model 784-50000-50000 (hosted)": "aelab.models.check_size(with_overrides(aelab.preset('stacked'), "
                                             "{'hidden': '50000,50000'}).model, (1, 28, 28), 32)",
    }
    if not quick:
        count = 99_000_000 // (len(one_bit_png()) + 150)   # as many as fit in 100 MB with the zip's own entries
        out[f"3b zip of {count:,} 1-bit 4096x4096 PNGs (100 MB)"] = READ.format(
            path=str(png_zip(root / "pngs-100mb.zip", count)))
    return out


def _link(path: Path, target: str) -> Path:
    path.unlink(missing_ok=True)
    path.symlink_to(target)
    return path


def _fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the 100 MB zip")
    parser.add_argument("--dir", default=str(ROOT / "bench" / ".cache" / "hostile"))
    args = parser.parse_args(argv)
    rows = []
    print("| case | outcome | peak RSS over baseline (MB) | CPU (s) | wall (s) |\n|---|---|---|---|---|")
    for name, statement in cases(Path(args.dir), args.quick).items():
        env = {"AELAB_HOSTED": "1"} if "hosted" in name else {}
        r = measure(statement, env)
        rows.append({"case": name, **r})
        print(f"| {name} | {r['outcome'][:110]} | {r['rss_mb']:.0f} | {r['cpu_s']:.2f} | {r['wall_s']:.2f} |",
              flush=True)
    return rows


if __name__ == "__main__":
    main()
