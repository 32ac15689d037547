"""``hdr batch --engine ray``: the groups of a shoot as Ray tasks, on a cluster or locally.

Each group is one task running :func:`hdrcli.batch.fuse_group`, the same function the
local worker pool runs, so outputs are written the same way (temp file + rename, in the
output folder, which every node must see at the same path, as must the frames). The
driver (the ``hdr batch`` process) keeps the plan, ``--skip-existing``, the JSON report
and the contact sheet. A task whose worker dies (killed, out of memory, node lost) is
retried by Ray up to ``max_retries`` times, then reported as failed; the others finish.

Ray is an optional dependency: ``pip install 'hdrcli[cluster]'``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from hdrcli.errors import HdrError

INSTALL_HINT = "pip install 'hdrcli[cluster]'"
CONNECT_TIMEOUT_S = 15.0  # the whole connection (a handshake takes seconds), so a bad --address fails within 30 s


def import_ray():
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise HdrError(f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _probe(address: str, timeout: float) -> None:
    """A TCP connection to the head, so an unreachable address fails in seconds, not minutes."""
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise HdrError(f"--address '{address}': expected HOST:PORT (the head's GCS, default port 6379) "
                       "or ray://HOST:PORT (Ray Client, default port 10001)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise HdrError(f"cannot reach the Ray cluster at {address} ({reason})") from None


def _ray_task(job: Callable[..., dict], paths: list[str], outputs: list[str], options: dict, threads: int) -> dict:
    """One group on a Ray worker: ``job`` is the batch's own group function (passed by the
    batch, so this module does not import it back), run as a local job runs it."""
    return job(paths, outputs, options, threads)


class RaySession:
    """A connection to a Ray cluster (or a local instance this session started)."""

    def __init__(self, ray, threads: int, max_retries: int) -> None:
        self.ray = ray
        self.threads = threads
        self.max_retries = max_retries

    def run(self, todo: list, options: dict, finish: Callable[..., None], job: Callable[..., dict]) -> None:
        """Submit every group as ``job(paths, outputs, options, threads)`` on a worker, then call
        ``finish(group, row, result)`` as each one ends."""
        ray = self.ray
        # The workers' thread variables, set before numpy loads OpenBLAS (its sums depend on
        # the thread count), so that outputs are byte-identical to a local run with the same threads.
        env = {var: str(self.threads) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        env.update({k: v for k, v in os.environ.items() if k.startswith("HDRCLI_")})
        task = ray.remote(num_cpus=self.threads, max_retries=self.max_retries, retry_exceptions=False,
                          runtime_env={"env_vars": env})(_ray_task)
        refs = {
            task.remote(job, [str(s.path) for s in g.shots], [str(p) for p in g.outputs], g.options(options), self.threads): (g, row)
            for g, row in todo
        }
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    group, row = refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the worker died on every attempt
                        first = (str(exc).strip().splitlines() or [""])[0]
                        result = {"status": "failed", "time_s": None, "written": [],
                                  "error": f"Ray task failed after {self.max_retries} retries: {type(exc).__name__}: {first}"}
                    finish(group, row, result)
        except BaseException:
            for ref in refs:  # interrupted: stop the rest (their temps are removed by the caller)
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort while stopping
                    pass
            raise

    def close(self) -> None:
        try:
            self.ray.shutdown()
        except Exception:  # noqa: BLE001 - nothing to report at exit
            pass


def connect(address: str | None, jobs: int, threads: int | None = None, max_retries: int = 2,
            timeout: float = CONNECT_TIMEOUT_S) -> RaySession:
    """Connect to the cluster at ``address`` (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``),
    or start a local Ray instance with ``jobs`` CPUs when ``address`` is None.

    Fails with one line, before anything is written, when Ray is missing or the cluster
    cannot be reached within ``timeout`` seconds.
    """
    ray = import_ray()
    threads = threads or 1
    if address not in (None, "auto"):
        _probe(address, timeout=min(5.0, timeout))
    kwargs = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False,
              "ignore_reinit_error": True}
    if address is None:
        kwargs["num_cpus"] = max(1, jobs) * threads
    else:
        kwargs["address"] = address
    outcome: dict = {}

    def init() -> None:
        try:
            outcome["context"] = ray.init(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's thread
            outcome["error"] = exc

    where = address or "a local Ray instance"
    if address is None:
        # In this thread: Ray ties the processes it starts (GCS, raylet) to the starting
        # thread's life (PR_SET_PDEATHSIG), so a helper thread would take them down with it.
        init()
        thread = None
    else:  # only a connection: bounded by a timeout, so an unanswering head fails within 30 s
        thread = threading.Thread(target=init, name="hdrcli-ray-connect", daemon=True)
        thread.start()
        thread.join(timeout)
    if thread is not None and thread.is_alive():
        raise HdrError(f"cannot connect to the Ray cluster at {where}: no answer within {timeout:.0f} s")
    if "error" in outcome:
        exc = outcome["error"]
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HdrError(f"cannot connect to the Ray cluster at {where}: {first}")
    return RaySession(ray, threads, max_retries)


__all__ = ["INSTALL_HINT", "RaySession", "connect", "import_ray"]
