"""Sandbox processes for ingest units: a hung or crashing parser costs one file, never the run.

A unit runs in a helper process (``python -m flywheel.ingest.sandbox``) taken from a pool: started
once with the readers imported, reused for many units, returned to the pool after each. A unit is
one JSON line in, one line out. When a unit does not answer within its timeout its helper is
killed (the next unit gets a fresh one); when a helper dies, the unit is reported as crashed.
Helpers are recycled after ``RECYCLE_AFTER`` units to bound their memory, and stopped when the
process exits. :func:`prestart` warms the pool while the driver is still planning.

Why not multiprocessing: its spawn/forkserver children re-import the parent's ``__main__``
(``prefect.engine`` inside a flow run: seconds per unit), and ``fork`` from a threaded process can
deadlock. A helper is a plain subprocess, which also works inside daemonic Dask workers.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path

RECYCLE_AFTER = 500
_idle: list[Helper] = []
_helpers: set[Helper] = set()
_lock = threading.Lock()


class Helper:
    def __init__(self):
        root = str(Path(__file__).resolve().parents[2])
        env = {
            **os.environ,
            "OMP_THREAD_LIMIT": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flywheel.ingest.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            bufsize=1,
        )
        self.units = 0
        with _lock:
            _helpers.add(self)

    def call(self, args: list, timeout_s: float) -> tuple[str, str]:
        """('ok', '') | ('timeout', detail) | ('crashed', detail)."""
        try:
            self.proc.stdin.write(json.dumps(args) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()
            return "crashed", f"sandbox process gone (exit code {self.proc.poll()})"
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            self.close(kill=True)
            return "timeout", f"no result after {timeout_s:g} s; the reader was killed"
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.close()
            return "crashed", f"reader process died with exit code {code}"
        self.units += 1
        return "ok", ""

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, kill: bool = False, wait: bool = True) -> None:
        with _lock:
            _helpers.discard(self)
        if kill:
            self.proc.kill()
        else:
            try:
                self.proc.stdin.close()  # the helper's loop ends on EOF
            except OSError:
                pass
        if wait:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _acquire() -> Helper:
    with _lock:
        while _idle:
            h = _idle.pop()
            if h.alive:
                return h
    return Helper()


def _release(h: Helper) -> None:
    if not h.alive or h.units >= RECYCLE_AFTER:
        h.close(wait=False)
        return
    with _lock:
        if len(_idle) < (os.cpu_count() or 1) * 2:
            _idle.append(h)
            return
    h.close(wait=False)


def prestart(n: int) -> None:
    """Start helpers until ``n`` are idle; they import their readers while the caller goes on."""
    with _lock:
        missing = n - sum(1 for h in _idle if h.alive)
    for _ in range(max(0, missing)):
        h = Helper()
        with _lock:
            _idle.append(h)


def run(args: list, timeout_s: float) -> tuple[str, str]:
    """Run ``flywheel.ingest.unit.unit_main(*args)`` in a pooled helper."""
    helper = _acquire()
    status, detail = helper.call(args, timeout_s)
    if status == "ok":
        _release(helper)
    return status, detail


@atexit.register
def shutdown() -> None:
    """Stop every helper this process started."""
    with _lock:
        helpers = list(_helpers)
        _idle.clear()
    for h in helpers:
        h.close(wait=False)
    for h in helpers:
        try:
            h.proc.wait(5)
        except subprocess.TimeoutExpired:
            h.proc.kill()


def main() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    from flywheel.ingest.unit import PRELOAD, unit_main

    for mod in PRELOAD:
        try:
            __import__(mod)
        except ImportError:
            pass
    for line in sys.stdin:
        if line.strip():
            unit_main(*json.loads(line))
            proto.write("ok\n")


if __name__ == "__main__":
    main()
