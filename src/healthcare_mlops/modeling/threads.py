"""One BLAS/OpenMP thread per fit: what keeps a fitted model's floats independent of the machine.

scikit-learn's histogram boosting sums gradients in per-thread chunks, so its floats follow
the thread count, and a laptop and a Databricks cluster have different core counts
(docs/architecture.md, "Reproducible training"). Every fit (the candidates' folds, the
winner, the label-free estimate's loss models) runs pinned. OpenMP's thread count is a
per-thread setting: a pool's threads pin themselves (``pin_this_thread``), the main thread's
limit does not reach them. Pinned fits also keep OpenMP from spinning beside Spark or on a
busy machine (README, Tests: what that cost under load).
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

TRAINING_THREADS = 1


def pinned_threads() -> threadpool_limits:
    """BLAS and OpenMP limited to ``TRAINING_THREADS`` (a context manager; or keep it and call
    ``restore_original_limits``)."""
    return threadpool_limits(TRAINING_THREADS)


def pin_this_thread() -> None:
    """Pin the calling thread's OpenMP team for good (a thread pool's initializer)."""
    threadpool_limits(TRAINING_THREADS, user_api="openmp")
