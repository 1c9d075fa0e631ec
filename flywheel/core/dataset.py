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
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
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

    def parts(self) -> list[Path]:
        """The Parquet parts in order (read them one at a time to keep memory to one part)."""
        return sorted(self.path.glob("part-*.parquet"))

    def to_pandas(self) -> pd.DataFrame:
        parts = self.parts()
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in self.manifest.get("schema", {})})
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)

    def summary(self) -> dict:
        return {"name": self.name, "digest": self.digest, "rows": self.rows, "path": str(self.path)}


class DatasetWriter:
    """Stream DataFrames into a Dataset without holding them all: parts are written as they fill, the
    digest is updated row by row (equal to :func:`content_digest` of the concatenation), and the
    folder is published atomically by :meth:`close`.

        with DatasetWriter(root, "docs") as w:
            for df in frames: w.write(df)
        ds = w.dataset
    """

    def __init__(
        self,
        root: str | Path,
        name: str,
        *,
        parents=(),
        config: dict | None = None,
        extra: dict | None = None,
        path: str | Path | None = None,
    ):
        self.root, self.name, self.fixed_path = Path(root), name, Path(path) if path else None
        self.manifest_base = {"name": name, "parents": list(parents), "config": config or {}, **(extra or {})}
        self.tmp = (self.fixed_path or self.root / name).with_name(
            (self.fixed_path.name if self.fixed_path else name) + f".tmp-{uuid.uuid4().hex[:8]}"
        )
        self.tmp.mkdir(parents=True)
        self.hash = hashlib.sha256()
        self.rows, self.parts, self.schema, self.columns = 0, 0, None, None
        self.buffer: list[pd.DataFrame] = []
        self.buffered = 0
        self.dataset: Dataset | None = None

    def write(self, df: pd.DataFrame) -> None:
        if self.columns is None:
            self.columns = list(map(str, df.columns))
            self.schema = {c: str(t) for c, t in df.dtypes.items()}
            self.hash.update(json.dumps(self.columns).encode())
        elif list(map(str, df.columns)) != self.columns:
            raise ValueError(f"dataset {self.name}: columns {list(df.columns)} differ from {self.columns}")
        for row in df.itertuples(index=False, name=None):
            self.hash.update(json.dumps(row, default=str, ensure_ascii=False).encode())
            self.hash.update(b"\n")
        self.rows += len(df)
        self.buffer.append(df)
        self.buffered += len(df)
        while self.buffered >= PART_ROWS:
            self._flush(PART_ROWS)

    def _flush(self, n: int) -> None:
        df = (
            pd.concat(self.buffer, ignore_index=True) if len(self.buffer) > 1 else self.buffer[0].reset_index(drop=True)
        )
        df.iloc[:n].to_parquet(self.tmp / f"part-{self.parts:05d}.parquet", index=False)
        self.parts += 1
        rest = df.iloc[n:]
        self.buffer, self.buffered = ([rest] if len(rest) else []), len(rest)

    def close(self) -> Dataset:
        if self.columns is None:
            raise ValueError(f"dataset {self.name}: nothing written (not even an empty frame with its columns)")
        if self.buffered or self.parts == 0:
            self.buffer = self.buffer or [pd.DataFrame({c: pd.Series(dtype=t) for c, t in self.schema.items()})]
            self._flush(self.buffered)
        digest = self.hash.hexdigest()
        path = self.fixed_path or self.root / self.name / digest[:12]
        manifest = {"name": self.name, "digest": digest, "rows": self.rows, "schema": self.schema, **self.manifest_base}
        existing = path / "manifest.json"
        if existing.exists():
            old = json.loads(existing.read_text())
            if old.get("digest") == digest:
                shutil.rmtree(self.tmp, ignore_errors=True)
                self.dataset = Dataset(path, old)  # idempotent: same content, same folder, keep created_at
                return self.dataset
        manifest["created_at"] = datetime.now(UTC).isoformat()
        (self.tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            if not (path / "manifest.json").exists() and any(path.iterdir()):
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise FileExistsError(f"{path}: exists and is not a dataset; refusing to replace it")
            shutil.rmtree(path)
        self.tmp.rename(path)  # atomic publish: readers never see half a dataset
        self.dataset = Dataset(path, manifest)
        return self.dataset

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_dataset(
    df: pd.DataFrame,
    root: str | Path,
    name: str,
    *,
    parents: list[str] | tuple[str, ...] = (),
    config: dict | None = None,
    extra: dict | None = None,
    path: str | Path | None = None,
) -> Dataset:
    """Write one DataFrame as a Dataset at ``<root>/<name>/<digest[:12]>`` (or at ``path``)."""
    w = DatasetWriter(root, name, parents=parents, config=config, extra=extra, path=path)
    try:
        w.write(df.reset_index(drop=True))
        return w.close()
    except BaseException:
        w.abort()
        raise


def is_dataset(path: str | Path) -> bool:
    """A Dataset folder (as opposed to files to ingest first)."""
    return (Path(path) / "manifest.json").exists()


def read_dataset(path: str | Path) -> Dataset:
    path = Path(path)
    manifest_file = path / "manifest.json"
    if not manifest_file.exists():
        raise FileNotFoundError(f"{path}: not a dataset (no manifest.json)")
    return Dataset(path, json.loads(manifest_file.read_text()))


def read_table(path: str | Path) -> pd.DataFrame:
    """A Dataset folder, or a .parquet / .csv / .jsonl / .json file, as one DataFrame (an empty file: no rows).
    ValueError names the path when it is missing or of another kind."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    if path.is_dir():
        return read_dataset(path).to_pandas()
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path) if path.stat().st_size else pd.DataFrame()
    if path.suffix in (".jsonl", ".json"):
        return pd.read_json(path, lines=path.suffix == ".jsonl") if path.stat().st_size else pd.DataFrame()
    raise ValueError(f"{path}: expected a Dataset folder, .jsonl, .json, .parquet or .csv")
