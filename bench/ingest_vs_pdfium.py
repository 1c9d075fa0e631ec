"""Ingest throughput side by side with raw pypdfium2 and pdfplumber, in one run.

    python -m bench.ingest_vs_pdfium [--text-pages 600] [--mixed-pages 200] [--big-pages 1000]

1. text-only PDF: raw pypdfium2 text extraction, one loop over the pages (the limit, no output
   written) vs ``run_ingest`` + the Parquet dataset write (everything a user gets);
2. mixed PDF (a ruled table on every 5th page): pdfplumber ``extract_tables`` on every page vs
   ``run_ingest``; both checked cell-exact against the generator's tables;
3. a large PDF through ``run_ingest``: pages/s and the peak memory of the driver and of the
   sandbox processes (RSS), to show memory stays bounded by ``pages_per_task``.

"cold" is the first ``run_ingest`` of the process (sandbox processes and the Dask cluster start);
"warm" reuses the started sandboxes, as a long-running worker or a second file batch does.

Prints one JSON line per measurement and the ratios at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

from examples import corpus
from flywheel.core.dataset import DatasetWriter
from flywheel.ingest.config import IngestConfig
from flywheel.ingest.engine import run_ingest
from flywheel.ingest.tables import to_markdown


def raw_pdfium(path: Path) -> int:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    chars = 0
    for i in range(len(pdf)):
        chars += len(pdf[i].get_textpage().get_text_range())
    pdf.close()
    return chars


def plumber_tables(path: Path) -> dict[int, list]:
    import pdfplumber

    out = {}
    with pdfplumber.open(str(path)) as doc:
        for page in doc.pages:
            tables = page.extract_tables()
            if tables:
                out[page.page_number] = tables[0]
    return out


def ours(paths: list[Path], out_root: Path, cfg: IngestConfig):
    res = run_ingest(paths, cfg)
    with DatasetWriter(out_root, "bench") as w:
        for df in res.frames():
            w.write(df)
    return res, w.dataset


class PeakRss:
    """Peak RSS (MiB) of this process (VmHWM, reset first) and of the sandbox helpers (sampled every 20 ms)."""

    def __enter__(self):
        self.before = (
            next(int(x.split()[1]) for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS"))
            // 1024
        )
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM
        self.helpers = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        from flywheel.ingest import sandbox

        while not self.stop.wait(0.02):
            for h in list(sandbox._helpers):
                try:
                    rss = next(
                        int(x.split()[1])
                        for x in Path(f"/proc/{h.proc.pid}/status").read_text().splitlines()
                        if x.startswith("VmRSS")
                    )
                    self.helpers = max(self.helpers, rss // 1024)
                except (OSError, StopIteration):
                    pass

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.driver = (
            next(int(x.split()[1]) for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM"))
            // 1024
        )


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text-pages", type=int, default=2000)
    p.add_argument("--mixed-pages", type=int, default=200)
    p.add_argument("--big-pages", type=int, default=1000)
    p.add_argument("--workers", type=int, default=0, help="0 = one per core")
    a = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="flywheel-bench-"))
    print(json.dumps({"machine": platform.machine(), "cores": os.cpu_count(), "python": sys.version.split()[0]}))

    text_pdf = corpus.ruled_table_pdf(tmp / "text.pdf", [None] * a.text_pages, text_lines=12)
    truth = {pg: corpus.table_for(pg, rows=6) for pg in range(1, a.mixed_pages + 1) if pg % 5 == 0}
    mixed_pdf = corpus.ruled_table_pdf(
        tmp / "mixed.pdf", [truth.get(pg) for pg in range(1, a.mixed_pages + 1)], text_lines=8
    )
    cfg = IngestConfig(workers=a.workers)

    raw_pdfium(text_pdf)  # warm the page cache and the library
    _, t_raw = timed(raw_pdfium, text_pdf)
    (res_t, ds_t), t_cold = timed(ours, [text_pdf], tmp / "ds", cfg)
    (res_w, _), t_warm = timed(ours, [text_pdf], tmp / "ds2", cfg)
    (res_1, _), t_ours1 = timed(ours, [text_pdf], tmp / "ds1", cfg.model_copy(update={"workers": 1}))
    text = {
        "pages": a.text_pages,
        "raw_pypdfium2_pages_s": a.text_pages / t_raw,
        "ours_cold_pages_s": a.text_pages / t_cold,
        "ours_warm_pages_s": a.text_pages / t_warm,
        "ours_warm_1_worker_pages_s": a.text_pages / t_ours1,
        "ours_rows": ds_t.rows,
    }
    print(json.dumps({"text_only": text}))

    tables_pl, t_pl = timed(plumber_tables, mixed_pdf)
    (res_m, ds_m), t_mixed = timed(ours, [mixed_pdf], tmp / "dsm", cfg)
    got = {r["page"]: r["text"] for r in res_m.rows if r["kind"] == "table"}
    exact_ours = sum(got.get(pg) == to_markdown(t) for pg, t in truth.items())
    exact_pl = sum(tables_pl.get(pg) == t for pg, t in truth.items())
    mixed = {
        "pages": a.mixed_pages,
        "table_pages": len(truth),
        "pdfplumber_pages_s": a.mixed_pages / t_pl,
        "ours_pages_s": a.mixed_pages / t_mixed,
        "ours_tables_exact": exact_ours,
        "pdfplumber_tables_exact": exact_pl,
        "table_pages_scanned": res_m.extra["table_pages_scanned"],
    }
    print(json.dumps({"mixed": mixed}))

    big_pdf = corpus.ruled_table_pdf(
        tmp / "big.pdf",
        [corpus.table_for(pg) if pg % 10 == 0 else None for pg in range(1, a.big_pages + 1)],
        text_lines=12,
    )
    import gc

    gc.collect()
    with PeakRss() as mem:
        (res_b, ds_b), t_big = timed(ours, [big_pdf], tmp / "dsb", cfg)
    big = {
        "pages": a.big_pages,
        "file_mb": round(big_pdf.stat().st_size / 1e6, 1),
        "ours_pages_s": a.big_pages / t_big,
        "rows": ds_b.rows,
        "driver_rss_before_mib": mem.before,
        "driver_peak_rss_mib": mem.driver,
        "sandbox_peak_rss_mib": mem.helpers,
        "pages_per_task": cfg.pages_per_task,
    }
    print(json.dumps({"big": big}))
    print(
        json.dumps(
            {
                "ratios": {
                    "text_only_cold_vs_raw_pypdfium2": round(
                        text["ours_cold_pages_s"] / text["raw_pypdfium2_pages_s"], 2
                    ),
                    "text_only_warm_vs_raw_pypdfium2": round(
                        text["ours_warm_pages_s"] / text["raw_pypdfium2_pages_s"], 2
                    ),
                    "text_only_warm_1_worker_vs_raw_pypdfium2": round(
                        text["ours_warm_1_worker_pages_s"] / text["raw_pypdfium2_pages_s"], 2
                    ),
                    "mixed_ours_vs_pdfplumber": round(mixed["ours_pages_s"] / mixed["pdfplumber_pages_s"], 1),
                    "tables_exact": f"ours {exact_ours}/{len(truth)}, pdfplumber {exact_pl}/{len(truth)}",
                }
            }
        )
    )


if __name__ == "__main__":
    main()
