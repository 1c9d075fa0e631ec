"""Parallel, fault-tolerant, incremental ingest on Dask.

The plan, per input file:

1. check it (regular file, readable, not empty, ``<= max_file_bytes`` unless it is JSONL, which is
   read in blocks of lines) and hash its content;
2. if ``incremental`` and ``<cache>/<digest>-<config>/entry.json`` exists, reuse its rows (``skipped_known``);
3. otherwise read it in units — a whole file, or ``pages_per_task`` pages of a PDF — each unit in a
   sandbox process (:mod:`flywheel.ingest.sandbox`) that writes its rows to a Parquet file and is killed after
   ``timeout_s`` (a parser hang quarantines the file as ``timeout``, a crash as ``crashed``);
4. when every unit of the file succeeded, publish the file's cache entry atomically.

Units run on a Dask cluster (an in-process LocalCluster with one thread per core by default, or
``FLYWHEEL_DASK_ADDRESS``), so pages of one large PDF and many small files spread over all cores.
No process holds more than one unit's rows: the result is a list of Parquet parts that
:meth:`IngestResult.frames` streams. On a remote cluster the cache folder must be on a shared
filesystem.

    from flywheel.ingest.engine import run_ingest
    result = run_ingest(["docs/"], IngestConfig(), cache_dir=".flywheel/cache/ingest")
    for df in result.frames(): ...
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.core.errors import QuarantineError
from flywheel.core.steps import StepStats
from flywheel.ingest.config import IngestConfig
from flywheel.ingest.sniff import sniff

log = logging.getLogger("flywheel.ingest")

READER_VERSION = 4  # bump when a reader changes its rows, so cached entries are re-read
COLUMNS = ["id", "text", "source", "page", "kind", "meta"]
FIRST_UNIT_PAGES = 8  # the first unit of a file also learns its page count
OCR_PAGES_PER_TASK = 8  # page batches of a PDF whose first pages needed OCR
JSONL_BLOCKS_PER_TASK = 8  # 8 x 8 MiB of JSONL lines per task: a task's rows stay well under a GiB


@dataclass
class IngestResult:
    quarantine: list[dict] = field(default_factory=list)
    stats: StepStats = field(default_factory=lambda: StepStats("ingest"))
    files: int = 0
    extra: dict = field(default_factory=dict)  # pages, table_pages_scanned, ocr_pages, skipped_known, ...
    entries: list[tuple[str, Path]] = field(default_factory=list)  # (path as given, cache entry), input order
    _tmp: object = None  # keeps a run-scoped cache alive while the result is in use

    def parts(self):
        """(path, Parquet part) in input order, pages in order."""
        for path, entry in self.entries:
            meta = json.loads((entry / "entry.json").read_text())
            for unit in meta["units"]:
                yield path, meta["path"], entry / f"{unit}.parquet"

    def frames(self):
        """One pandas DataFrame per unit, with ``source`` set to where the file is now."""
        import pyarrow.parquet as pq

        for path, cached_as, part in self.parts():
            df = pq.read_table(part).to_pandas()
            if cached_as != path and len(df):
                df = _relocate(df, cached_as, path)
            yield df

    @property
    def rows(self) -> list[dict]:
        """All rows in memory (small inputs and tests); use :meth:`frames` for large ones."""
        return [r for df in self.frames() for r in df.to_dict("records")]


def _relocate(df, old: str, new: str):
    df = df.copy()
    df.loc[df["source"] == old, "source"] = new

    def fix(m: str) -> str:
        d = json.loads(m)
        if d.get("source") == old:
            d["source"] = new
            return json.dumps(d, sort_keys=True, ensure_ascii=False)
        return m

    df["meta"] = df["meta"].map(fix)
    return df


def _sweep(cache_dir: Path, older_than_s: float = 86_400) -> None:
    """Remove work folders a killed run left behind (a live run's are younger than a day)."""
    now = time.time()
    for tmp in cache_dir.glob("*.tmp-*"):
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def cache_key(digest: str, cfg: IngestConfig) -> str:
    """Content digest + the settings that change rows (tables, rulings, OCR), not the ones that only change speed."""
    knobs = {"v": READER_VERSION, "tables": cfg.tables, "min_rulings": cfg.min_rulings, "ocr": cfg.ocr.model_dump()}
    return f"{digest[:32]}-{hashlib.sha1(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:8]}"


# ---------------------------------------------------------------- the sandboxed unit


def run_unit(
    path: str,
    digest: str,
    cfg_json: str,
    first: int,
    last: int,
    out_dir: str,
    unit: str,
    timeout_s: float,
    isolate: bool = True,
) -> dict:
    """Run one unit in a pooled sandbox process with a wall-clock limit; returns the unit's outcome dict."""
    out = Path(out_dir)
    if isolate:
        from flywheel.ingest import sandbox

        status, detail = sandbox.run([path, digest, cfg_json, first, last, out_dir, unit], timeout_s)
        if status == "timeout":
            return {"ok": False, "reason": "timeout", "error": f"unit pages {first}-{last}: {detail}"}
        if status == "crashed" or not (out / f"{unit}.json").exists():
            return {"ok": False, "reason": "crashed", "error": detail or "the reader wrote no result"}
    else:  # in this thread: no timeout (tests of the readers themselves, debugging)
        from flywheel.ingest.unit import unit_main

        unit_main(path, digest, cfg_json, first, last, out_dir, unit)
    return json.loads((out / f"{unit}.json").read_text())


# ---------------------------------------------------------------- per-file tasks (run on Dask)


def _unit_name(first: int) -> str:
    return f"unit-{first:07d}"


def file_task(path: str, cfg_json: str, cache_dir: str, isolate: bool = True) -> dict:
    """Check, hash, look up the cache, and read the first unit of one file."""
    from flywheel.ingest.readers import check_file, file_digest

    cfg = IngestConfig.model_validate_json(cfg_json)
    p = Path(path)
    try:
        try:
            check_file(p, cfg.max_file_bytes)
        except QuarantineError as e:
            # JSONL is read in blocks of lines, never whole: the size limit guards the readers that hold a file
            if e.reason != "oversize" or sniff(p) != "jsonl":
                raise
        digest = file_digest(p)
    except QuarantineError as e:
        return {"path": path, "status": "quarantined", "reason": e.reason, "error": e.detail}
    except OSError as e:
        return {"path": path, "status": "quarantined", "reason": "unreadable", "error": f"{type(e).__name__}: {e}"}
    key = cache_key(digest, cfg)
    if cfg.incremental and (Path(cache_dir) / key / "entry.json").exists():
        return {"path": path, "status": "cached", "key": key, "digest": digest}
    work = Path(cache_dir) / f"{key}.tmp-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    # Small, so the rest of a big PDF (pages) or JSONL file (8 MiB blocks of lines) is scheduled early.
    last = min(cfg.pages_per_task, FIRST_UNIT_PAGES, JSONL_BLOCKS_PER_TASK)
    res = run_unit(path, digest, cfg_json, 1, last, str(work), _unit_name(1), cfg.timeout_s, isolate)
    more = []
    if res.get("ok") and res.get("kind") in ("pdf", "jsonl"):
        # A scanned PDF needs seconds per page of OCR: smaller batches keep each under the timeout.
        step = (
            min(cfg.pages_per_task, OCR_PAGES_PER_TASK)
            if res.get("counters", {}).get("ocr_pages")
            else cfg.pages_per_task
        )
        step = JSONL_BLOCKS_PER_TASK if res["kind"] == "jsonl" else step
        more = [(a, min(a + step - 1, res["n_pages"])) for a in range(last + 1, res["n_pages"] + 1, step)]
    return {
        "path": path,
        "status": "read",
        "key": key,
        "digest": digest,
        "work": str(work),
        "units": {1: res},
        "more": more,
    }


def unit_task(path: str, digest: str, cfg_json: str, first: int, last: int, work: str, isolate: bool = True) -> dict:
    cfg = IngestConfig.model_validate_json(cfg_json)
    return {
        "path": path,
        "first": first,
        "res": run_unit(path, digest, cfg_json, first, last, work, _unit_name(first), cfg.timeout_s, isolate),
    }


# ---------------------------------------------------------------- the driver


class _Progress:
    def __init__(self, files: int, callback, every_s: float = 2.0):
        self.files, self.done, self.pages_done, self.pages_known = files, 0, 0, 0
        self.callback, self.every_s, self.last = (
            callback,
            every_s,
            time.monotonic(),
        )  # short runs report once, at the end
        self.reported = None

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        state = {
            "files_done": self.done,
            "files": self.files,
            "pages_done": self.pages_done,
            "pages_known": self.pages_known,
        }
        if (not force and now - self.last < self.every_s) or state == self.reported:
            return
        self.last, self.reported = now, state
        (
            self.callback
            or (
                lambda s: log.info(
                    "ingest: %(files_done)d/%(files)d files, %(pages_done)d/%(pages_known)d PDF pages", s
                )
            )
        )(state)


def _finish_file(state: dict, cache_dir: Path, result: IngestResult):
    """All units of one file are back: publish its cache entry ``(entry, folder)``, or quarantine the whole file."""
    path, work = state["path"], Path(state["work"])
    units = [state["units"][k] for k in sorted(state["units"])]
    failed = next((u for u in units if not u.get("ok")), None)
    partial = [q for u in units if u.get("ok") for q in u.get("quarantine", [])]
    rows = sum(u.get("rows", 0) for u in units if u.get("ok"))
    if failed is None and rows == 0 and not any(not q.get("partial") for q in partial):
        failed = {"reason": "no_content", "error": f"{units[0].get('kind')}: nothing extractable"}
    if failed is not None:
        shutil.rmtree(work, ignore_errors=True)
        result.quarantine.append({"path": path, "reason": failed["reason"], "error": failed.get("error", "")})
        return None
    unit_counters = Counter()
    for u in units:
        unit_counters.update(u.get("counters", {}))
    entry = {
        "path": path,
        "digest": state["digest"],
        "kind": units[0]["kind"],
        "n_pages": units[0].get("n_pages", 0),
        "rows": rows,
        "units": [_unit_name(k) for k in sorted(state["units"])],
        "quarantine": partial,
        "counters": dict(unit_counters),
        "created": time.time(),
    }
    (work / "entry.json").write_text(json.dumps(entry, default=str))
    final = cache_dir / state["key"]
    if final.exists():  # a non-incremental re-read, or a concurrent run that finished first
        shutil.rmtree(final, ignore_errors=True)
    os.replace(work, final)
    return entry, final


def _account(entry: dict, final: Path, path: str, result: IngestResult, counters: Counter) -> None:
    from flywheel.ingest.sniff import mislabel_note

    result.entries.append((path, final))
    result.quarantine.extend({**q, "path": path} for q in entry["quarantine"])
    if note := mislabel_note(Path(path), entry["kind"]):  # about this path's name, not the (cached) content
        result.quarantine.append({"path": path, "reason": "mislabelled", "error": note, "partial": True})
    counters["rows"] += entry["rows"]
    counters[f"files_{entry['kind']}"] += 1
    counters.update(entry["counters"])


def run_ingest(
    paths,
    cfg: IngestConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    dask_address: str | None = None,
    isolate: bool = True,
    progress=None,
) -> IngestResult:
    """Ingest files and folders; see the module docstring for the plan."""
    from distributed import as_completed

    from flywheel.core.cluster import dask_client
    from flywheel.ingest.readers import expand

    cfg = cfg or IngestConfig()
    result = IngestResult()
    if cache_dir is None:  # no incremental state asked for: a run-scoped cache
        result._tmp = tempfile.TemporaryDirectory(prefix="flywheel-ingest-")
        cache_dir = result._tmp.name
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _sweep(cache_dir)
    files = list(dict.fromkeys(str(p) for p in expand(paths)))  # a file named twice is read once
    result.files = len(files)
    cfg_json = cfg.model_dump_json()
    counters: Counter = Counter()
    states: dict[str, dict] = {}
    order = {p: i for i, p in enumerate(files)}
    prog = _Progress(len(files), progress)
    entries: dict[str, tuple] = {}
    if files:
        address = dask_address or os.environ.get("FLYWHEEL_DASK_ADDRESS")
        threads = cfg.workers or os.cpu_count() or 1
        if not address:
            from flywheel.ingest import sandbox

            sandbox.prestart(min(threads, len(files)))  # they start while the cluster comes up
        with dask_client(address, threads=threads) as client:
            futures = as_completed(
                client.map(file_task, files, cfg_json=cfg_json, cache_dir=str(cache_dir), isolate=isolate, pure=False)
            )
            for fut in futures:
                out = fut.result()
                if "first" in out:  # a later page batch of a PDF, or block batch of a JSONL file
                    state = states[out["path"]]
                    state["units"][out["first"]] = out["res"]
                    prog.pages_done += out["res"].get("counters", {}).get("pages", 0)
                    state["pending"] -= 1
                elif out["status"] == "quarantined":
                    result.quarantine.append({k: out[k] for k in ("path", "reason", "error")})
                    prog.done += 1
                    continue
                elif out["status"] == "cached":
                    final = cache_dir / out["key"]
                    entry = json.loads((final / "entry.json").read_text())
                    entries[out["path"]] = (entry, final)
                    counters["skipped_known"] += 1
                    prog.done += 1
                    continue
                else:
                    state = states[out["path"]] = {**out, "pending": len(out["more"])}
                    first = out["units"][1]
                    prog.pages_known += first.get("n_pages", 0) if first.get("kind") == "pdf" else 0
                    prog.pages_done += first.get("counters", {}).get("pages", 0)
                    for a, b in out["more"]:
                        futures.add(
                            client.submit(
                                unit_task,
                                out["path"],
                                out["digest"],
                                cfg_json,
                                a,
                                b,
                                out["work"],
                                isolate=isolate,
                                pure=False,
                            )
                        )
                if state["pending"] == 0:
                    if (published := _finish_file(state, cache_dir, result)) is not None:
                        entries[out["path"]] = published
                    prog.done += 1
                prog.tick()
    # Publish in input order, whatever order the units finished in.
    for path in sorted(entries, key=order.get):
        entry, final = entries[path]
        _account(entry, final, path, result, counters)
    prog.tick(force=True)
    _summarise(result, counters)
    return result


def _summarise(result: IngestResult, counters: Counter) -> None:
    s = result.stats
    # Counted per input unit: rows kept; whole files and single JSONL/Parquet records dropped.
    s.kept = counters["rows"]
    for q in result.quarantine:
        if q.get("partial"):  # the file's rows were kept; one extraction (a table, an OCR) failed or a note
            result.extra["partial_failures"] = result.extra.get("partial_failures", 0) + 1
        else:
            s.dropped[q["reason"]] += 1
    s.total = s.kept + sum(s.dropped.values())
    result.extra.update(
        {
            "pages": counters["pages"],
            "table_pages_scanned": counters["table_pages"],
            "ocr_pages": counters["ocr_pages"],
            "images_ocrd": counters["images_ocrd"],
            "skipped_known": counters["skipped_known"],
            "files_by_type": {k[6:]: v for k, v in sorted(counters.items()) if k.startswith("files_") and v},
        }
    )
