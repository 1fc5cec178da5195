"""What the fork server of the app's workers imports before it forks any (see :class:`aelab.jobs.Worker`).

The workers share these pages (torch, scikit-learn, torch._dynamo: about 450 MB) as long as none writes to them,
and start with their imports done: a fork, not 4-5 s of imports.
"""
import gc

from . import worker, worker_imports  # noqa: F401

# the imported objects out of the collector's sight: a full collection in a worker would otherwise write to (and so
# copy) every page that holds one
gc.freeze()
