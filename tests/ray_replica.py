"""One app replica's job system on the Ray backend, driven by a test (test_ray.py): ``python ray_replica.py
RUNS_DIR NAME EPOCHS`` starts one training job, prints its status and place in the queue as a JSON line
every 0.2 s until it ends, and stops it when it reads ``stop`` on stdin. Settings come from the environment
(AELAB_JOB_BACKEND=ray, AELAB_RAY_ADDRESS, AELAB_MAX_JOBS)."""
import json
import sys
import threading
import time

import aelab
from aelab.config import AutoencoderConfig
from aelab.jobs import make_registry

runs_dir, name, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = aelab.preset("stacked", "digits")
cfg.model, cfg.train.epochs = AutoencoderConfig(hidden=(16,), latent=4), epochs
registry = make_registry()
job = registry.start(cfg, runs_dir, owner=f"visitor-{name}", name=name)
threading.Thread(target=lambda: sys.stdin.readline().strip() == "stop" and job.stop(), daemon=True).start()
while True:
    snap = job.snapshot()
    print(json.dumps({"status": snap.status, "position": snap.position, "batch": snap.batch,
                      "run_name": snap.run_name, "error": snap.error}), flush=True)
    if snap.done:
        break
    time.sleep(0.2)
registry.close()
