"""Sandbox processes for ingest units: a hung or crashing parser costs one file, never the run.

Each thread that runs units (a Dask worker thread) owns one helper process
(``python -m flywheel.ingest.sandbox``), started once with the readers imported and reused for
many units. A unit is one JSON line in, one line out. When a unit does not answer within its
timeout the helper is killed (and a fresh one starts for the next unit); when it dies, the unit is
reported as crashed. Helpers are recycled after ``RECYCLE_AFTER`` units to bound their memory.

Why not multiprocessing: its spawn/forkserver children re-import the parent's ``__main__``
(``prefect.engine`` inside a flow run: seconds per unit), and ``fork`` from a threaded process can
deadlock. A helper is a plain subprocess, which also works inside daemonic Dask workers.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path

RECYCLE_AFTER = 500
_local = threading.local()
_helpers: set["Helper"] = set()
_lock = threading.Lock()


class Helper:
    def __init__(self):
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "OMP_THREAD_LIMIT": "1", "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.proc = subprocess.Popen([sys.executable, "-m", "flywheel.ingest.sandbox"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
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
        if self.units >= RECYCLE_AFTER:
            self.close()
        return "ok", ""

    def close(self, kill: bool = False) -> None:
        with _lock:
            _helpers.discard(self)
        if getattr(_local, "helper", None) is self:
            _local.helper = None
        if kill:
            self.proc.kill()
        else:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run(args: list, timeout_s: float) -> tuple[str, str]:
    """Run ``flywheel.ingest.engine._unit_main(*args)`` in this thread's helper."""
    helper = getattr(_local, "helper", None)
    if helper is None or helper.proc.poll() is not None:
        helper = _local.helper = Helper()
    return helper.call(args, timeout_s)


def shutdown() -> None:
    """Stop every helper this process started (the end of a local ingest run)."""
    with _lock:
        helpers = list(_helpers)
    for h in helpers:
        h.close()


def main() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    from flywheel.ingest.engine import PRELOAD, _unit_main

    for mod in PRELOAD:
        try:
            __import__(mod)
        except ImportError:
            pass
    for line in sys.stdin:
        if line.strip():
            _unit_main(*json.loads(line))
            proto.write("ok\n")


if __name__ == "__main__":
    main()
