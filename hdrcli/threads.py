"""How many CPU threads a job uses: one setting for OpenCV, numpy merges, OpenEXR, torch and ONNX Runtime.

Libraries pick their own thread counts (torch: all cores it can see, with OpenMP
spinning), which on a shared or loaded machine oversubscribes the CPU: on 2 busy cores
the lffnet step took 72 s with torch's default threads against 22 s with one thread
(issue 14). :func:`configure` sets every library at once; ``hdr fuse/expand --threads``
and each ``hdr batch`` job call it (batch divides the cores among its jobs).

torch's inter-op pool can only be sized before torch runs its first parallel work; later
calls keep the earlier size (harmless: hdrcli runs one model at a time).
"""

from __future__ import annotations

import os

_configured: int | None = None


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def current() -> int:
    """The thread count set by :func:`configure`, else the available cores."""
    return _configured if _configured is not None else available_cores()


def configure(threads: int | None = None) -> int:
    """Use ``threads`` CPU threads (None or 0: the available cores) in every library; returns the count.

    Sets OpenCV (cv2.setNumThreads), the OpenEXR writer's pool, torch's intra-op and (when
    still possible) inter-op pools if torch is imported, and the count that ONNX Runtime
    sessions and hdrcli's own chunked merges read through :func:`current`.
    Torch is not imported here: a classical job should not pay its import time.
    """
    global _configured
    if threads is not None and threads < 0:
        raise ValueError("threads must be >= 0")
    n = int(threads) if threads else available_cores()
    _configured = n
    import cv2

    cv2.setNumThreads(n)
    try:
        import OpenEXR

        OpenEXR.set_global_thread_count(n if n > 1 else 0)  # 0: write on the calling thread
    except (ImportError, AttributeError):
        pass
    import sys

    if "torch" in sys.modules:
        configure_torch(n)
    elif machine_busy():
        # OpenMP threads that spin while waiting burn the cores other jobs need: on the loaded
        # 2-core machine lffnet's step on 2 threads took 459 s wall / 49 s CPU with the
        # default policy and 85 s / 7 s with PASSIVE (bench/runtime_threads.py). On a quiet
        # machine spinning is faster: the merge head's many small operations find their threads
        # awake (dfgnet's network step on 1.5 MP: 0.82-0.90 s spinning, 1.19-1.23 s PASSIVE).
        # libgomp reads it once, when torch loads; a value the user set is kept.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return n


def machine_busy() -> bool:
    """Whether other work already keeps the cores busy: a 1-minute load average of at least one
    runnable task per core available to this process."""
    try:
        return os.getloadavg()[0] >= available_cores()
    except (OSError, AttributeError):  # no load average on this platform: assume a shared machine
        return True


def configure_torch(threads: int | None = None) -> None:
    """Size torch's thread pools (called by :func:`configure`, and by the runtimes once torch is loaded)."""
    import torch

    n = threads or current()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        if torch.get_num_interop_threads() != n:
            torch.set_num_interop_threads(n)
    except RuntimeError:  # inter-op pool already started: its size is fixed for this process
        pass
