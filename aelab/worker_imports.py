"""Everything a worker (:mod:`aelab.worker`) uses, imported before its first work: once, by the fork server its
workers are forked from (:mod:`aelab.worker_server`), or by a worker itself.

Before a worker's memory cap: SciPy's and OpenBLAS's set-up spins forever when an allocation fails under
RLIMIT_DATA, where torch raises a clear error. And ahead of Start: torch's optimizers import torch._dynamo when the
first one is built (1.4 s here).
"""
import scipy.linalg  # noqa: F401
import sklearn.datasets  # noqa: F401
import sklearn.decomposition  # noqa: F401
import sklearn.linear_model  # noqa: F401
import sklearn.manifold  # noqa: F401
import sklearn.neighbors  # noqa: F401
import torch._dynamo  # noqa: F401

from . import experiment, runtime, tasks, train  # noqa: F401
