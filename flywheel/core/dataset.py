"""The Dataset contract: a folder of Parquet parts plus ``manifest.json``.

The manifest holds name, content digest, row count, schema, created_at, parent digests and the
config that made it. The digest is a pure function of the rows (column names and values, in
order), so re-running a stage on the same input and config gives the same digest and the same
folder: datasets live at ``<root>/<name>/<digest[:12]>``.

Nested values (``meta``, ``messages``) are stored as JSON strings so every backend (pandas,
cuDF, Spark) reads the same flat schema.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

PART_ROWS = 50_000  # rows per Parquet part: small enough to stream, large enough to compress well


def content_digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(list(map(str, df.columns))).encode())
    for row in df.itertuples(index=False, name=None):
        h.update(json.dumps(row, default=str, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class Dataset:
    path: Path
    manifest: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def digest(self) -> str:
        return self.manifest["digest"]

    @property
    def rows(self) -> int:
        return self.manifest["rows"]

    def to_pandas(self) -> pd.DataFrame:
        parts = sorted(self.path.glob("part-*.parquet"))
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in self.manifest.get("schema", {})})
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)

    def summary(self) -> dict:
        return {"name": self.name, "digest": self.digest, "rows": self.rows, "path": str(self.path)}


def write_dataset(
    df: pd.DataFrame,
    root: str | Path,
    name: str,
    *,
    parents: list[str] | tuple[str, ...] = (),
    config: dict | None = None,
    extra: dict | None = None,
) -> Dataset:
    df = df.reset_index(drop=True)
    digest = content_digest(df)
    path = Path(root) / name / digest[:12]
    manifest = {
        "name": name,
        "digest": digest,
        "rows": int(len(df)),
        "schema": {c: str(t) for c, t in df.dtypes.items()},
        "parents": list(parents),
        "config": config or {},
        **(extra or {}),
    }
    existing = path / "manifest.json"
    if existing.exists():
        old = json.loads(existing.read_text())
        if old.get("digest") == digest:
            return Dataset(path, old)  # idempotent: same content, same folder, keep created_at
    manifest["created_at"] = datetime.now(timezone.utc).isoformat()
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, start in enumerate(range(0, max(len(df), 1), PART_ROWS)):
        df.iloc[start : start + PART_ROWS].to_parquet(tmp / f"part-{i:05d}.parquet", index=False)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)  # atomic publish: readers never see half a dataset
    return Dataset(path, manifest)


def read_dataset(path: str | Path) -> Dataset:
    path = Path(path)
    manifest_file = path / "manifest.json"
    if not manifest_file.exists():
        raise FileNotFoundError(f"{path}: not a dataset (no manifest.json)")
    return Dataset(path, json.loads(manifest_file.read_text()))
