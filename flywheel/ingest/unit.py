"""One ingest unit, as the sandbox process runs it: rows to ``<unit>.parquet``, the outcome to ``<unit>.json``.

Kept free of pandas and Dask so a sandbox starts in a fraction of a second.
"""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.core.errors import QuarantineError
from flywheel.ingest.config import IngestConfig

# Imported once when a sandbox starts, so the first unit does not pay for them.
PRELOAD = ["flywheel.ingest.readers", "flywheel.ingest.pdf", "pypdfium2", "pyarrow.parquet"]


def _write_rows(rows: list[dict], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("source", pa.string()),
            ("page", pa.int64()),
            ("kind", pa.string()),
            ("meta", pa.string()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out)


def unit_main(path: str, digest: str, cfg_json: str, first: int, last: int, out_dir: str, unit: str) -> None:
    """Body of one unit (runs in the sandbox process): rows to ``<unit>.parquet``, outcome to ``<unit>.json``."""
    from flywheel.ingest.readers import read_unit

    out = Path(out_dir)
    try:
        res = read_unit(path, digest, IngestConfig.model_validate_json(cfg_json), first, last)
        rows = res.pop("rows")
        _write_rows(rows, out / f"{unit}.parquet")
        res.update(ok=True, rows=len(rows))
    except QuarantineError as e:
        res = {"ok": False, "reason": e.reason, "error": e.detail}
    except Exception as e:  # noqa: BLE001 - any reader bug quarantines this file, never the run
        res = {"ok": False, "reason": "reader_error", "error": f"{type(e).__name__}: {e}"}
    tmp = out / f"{unit}.json.tmp"
    tmp.write_text(json.dumps(res, default=str))
    tmp.rename(out / f"{unit}.json")
