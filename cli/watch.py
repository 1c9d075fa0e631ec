"""``flywheel watch FOLDER --name N``: turn new files in a folder into Prefect events.

watchdog reports created, modified, moved-in and closed-after-write files; the watcher waits until
the folder has been quiet for ``debounce_s`` and then emits one ``flywheel.folder.changed`` event
(resource ``flywheel.folder.<name>``, payload: the folder and up to 100 changed files). The
deployment made by ``flywheel ingest-deploy`` reacts to it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from deployments.ingest import EVENT, resource_id

log = logging.getLogger("flywheel.watch")


class _Pending:
    def __init__(self):
        self.lock = threading.Lock()
        self.files: set[str] = set()
        self.last = 0.0

    def add(self, path: str) -> None:
        if Path(path).name.startswith("."):
            return  # editors' and our own temporary files
        with self.lock:
            self.files.add(path)
            self.last = time.monotonic()

    def take_if_quiet(self, debounce_s: float) -> list[str]:
        with self.lock:
            if not self.files or time.monotonic() - self.last < debounce_s:
                return []
            files, self.files = sorted(self.files), set()
            return files


def watch(
    folder: str | Path, name: str, debounce_s: float = 2.0, stop: threading.Event | None = None, emit=None
) -> int:
    """Watch until ``stop`` is set (or Ctrl-C); returns the number of events emitted."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    pending = _Pending()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event):
            if event.is_directory or event.event_type in ("deleted", "opened", "closed_no_write"):
                return
            pending.add(getattr(event, "dest_path", "") or event.src_path)

    if emit is None:
        from prefect.events import emit_event

        def emit(files):
            return emit_event(
                event=EVENT,
                resource={"prefect.resource.id": resource_id(name), "flywheel.folder": str(folder)},
                payload={"folder": str(folder), "files": files[:100], "count": len(files)},
            )

    observer = Observer()
    observer.schedule(Handler(), str(folder), recursive=True)
    observer.start()
    log.info("watching %s as %s (debounce %.1f s)", folder, resource_id(name), debounce_s)
    stop = stop or threading.Event()
    sent = 0
    try:
        while not stop.wait(0.25):
            files = pending.take_if_quiet(debounce_s)
            if files:
                emit(files)
                sent += 1
                log.info("%s: %d changed file(s) -> %s", folder, len(files), EVENT)
    except KeyboardInterrupt:
        pass
    finally:
        observer.stop()
        observer.join(5)
    return sent
