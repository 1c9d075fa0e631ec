"""Ingest at nv-ingest's level: tables cell-exact, OCR, every format by content, bad input, incremental, chunks.

The documents come from examples/corpus.py, which knows their ground truth. OCR runs the real
Tesseract (Debian tesseract-ocr, installed by `make venv`).
"""

import json
import shutil

import pandas as pd
import pytest

from examples import corpus
from flywheel.core.config import validate
from flywheel.core.errors import ConfigError
from flywheel.ingest.chunking import Chunker, encoder, whitespace_encoder
from flywheel.ingest.config import ChunkingConfig, IngestConfig
from flywheel.ingest.engine import run_ingest
from flywheel.ingest.tables import to_markdown


def _rows(res, name=None, kind=None):
    return [r for r in res.rows if (name is None or r["source"].endswith(name)) and (kind is None or r["kind"] == kind)]


def test_fifty_page_ruled_tables_are_cell_exact_across_page_batches(tmp_path):
    truth = {p: corpus.table_for(p, rows=4 + p % 5) for p in range(1, 51)}
    corpus.ruled_table_pdf(tmp_path / "tables.pdf", [truth[p] for p in range(1, 51)])
    seen = []
    res = run_ingest([tmp_path], IngestConfig(pages_per_task=16, ocr={"enabled": False}), progress=seen.append)
    tables = _rows(res, kind="table")
    assert [r["page"] for r in tables] == list(range(1, 51))  # in page order although 4 batches ran in parallel
    for r in tables:
        assert r["text"] == to_markdown(truth[r["page"]]), r["page"]
        meta = json.loads(r["meta"])
        assert (meta["rows"], meta["cols"], meta["pages"], meta["page"]) == (len(truth[r["page"]]), 4, 50, r["page"])
        assert meta["source"] == str(tmp_path / "tables.pdf") and len(meta["bbox"]) == 4
    assert [r["page"] for r in _rows(res, kind="text")] == list(range(1, 51))
    assert res.extra["pages"] == 50 and res.extra["table_pages_scanned"] == 50 and res.quarantine == []
    assert seen[-1] == {"files_done": 1, "files": 1, "pages_done": 50, "pages_known": 50}


def test_scanned_page_is_ocrd_and_a_figure_keeps_its_text(tmp_path):
    corpus.scanned_pdf(
        tmp_path / "scan.pdf", [["Scanned invoice 4711", "Total due 1,250.00 EUR", "Merchant Lakeside Books"]]
    )
    corpus.figure_pdf(tmp_path / "report.pdf", "Monthly chargeback report.", ["Chargebacks by month", "January 42"])
    res = run_ingest([tmp_path], IngestConfig())
    (scan,) = _rows(res, "scan.pdf")
    assert scan["kind"] == "ocr" and scan["page"] == 1
    for word in ["Scanned", "invoice", "4711", "1,250.00", "EUR", "Lakeside", "Books"]:
        assert word in scan["text"].split(), word
    assert json.loads(scan["meta"])["ocr"]["engine"] == "tesseract"
    text, figure = _rows(res, "report.pdf")
    assert (text["kind"], text["text"]) == ("text", "Monthly chargeback report.")
    assert figure["kind"] == "image_text" and "Chargebacks by month" in figure["text"] and "42" in figure["text"]
    left, bottom, right, top = json.loads(figure["meta"])["bbox"]
    assert (left, bottom, right) == (50.0, 300.0, 450.0) and top > bottom
    assert res.extra["ocr_pages"] == 1 and res.extra["images_ocrd"] == 1


def test_every_format_is_read_by_content_whatever_its_name(tmp_path):
    corpus.html_doc(tmp_path / "handbook.txt")  # HTML named .txt
    corpus.markdown_doc(tmp_path / "velocity.md")
    corpus.docx_doc(tmp_path / "dispute.bin", ["Escalation matrix", "Level 2 analyst"])  # DOCX with a figure
    corpus.parquet_doc(tmp_path / "records.parquet")
    res = run_ingest([tmp_path], IngestConfig())
    assert res.extra["files_by_type"] == {"docx": 1, "html": 1, "markdown": 1, "parquet": 1}
    html_text, html_table = _rows(res, "handbook.txt")
    assert html_text["text"].startswith("# Chargeback handbook") and "## Deadlines" in html_text["text"]
    assert "- Respond within 20 days." in html_text["text"]
    for boilerplate in ["tracking", "Menu entry", "Copyright footer", "color:red"]:
        assert boilerplate not in html_text["text"]
    assert html_table["text"] == to_markdown(
        [["Reason code", "Meaning"], ["10.4", "Fraud, card absent"], ["13.1", "Goods not received"]]
    )
    md_text, md_table = _rows(res, "velocity.md")
    assert "| velocity |" not in md_text["text"] and "prose continues" in md_text["text"]
    assert md_table["kind"] == "table" and md_table["text"].splitlines()[2] == "| velocity | 1 h | 5 |"
    docx_rows = _rows(res, "dispute.bin")
    assert [r["kind"] for r in docx_rows] == ["text", "table", "image_text"]
    assert docx_rows[0]["text"].startswith("# Dispute procedure")
    assert docx_rows[1]["text"] == to_markdown(
        [["Step", "Owner"], ["Freeze card", "analyst"], ["Refund", "back office"]]
    )
    assert "Escalation matrix" in docx_rows[2]["text"]
    parquet = _rows(res, "records.parquet")
    assert [(r["id"], r["text"], json.loads(r["meta"])) for r in parquet] == [
        ("p1", "first parquet record", {"label": "LEGIT"}),
        ("p3", "third parquet record", {"label": "FRAUD"}),
    ]
    assert [(q["reason"], q["line"]) for q in res.quarantine if not q.get("partial")] == [("missing_text", 2)]
    # the wrong extensions are reported, not fatal
    assert sorted(q["path"].rsplit("/", 1)[1] for q in res.quarantine if q["reason"] == "mislabelled") == [
        "handbook.txt"
    ]


def test_bad_input_corpus_each_file_gets_its_reason_and_the_good_ones_are_ingested(tmp_path):
    expected = corpus.bad_corpus(tmp_path)
    res = run_ingest([tmp_path], IngestConfig(max_file_bytes=1 << 20, timeout_s=8))
    got = {q["path"].rsplit("/", 1)[1]: q["reason"] for q in res.quarantine if not q.get("partial")}
    assert got == expected
    hang = next(q for q in res.quarantine if q["reason"] == "timeout")
    assert "killed" in hang["error"]
    assert {r["source"].rsplit("/", 1)[1] for r in res.rows} == {"good.pdf", "good-page.pdf"}
    assert len(_rows(res, "good.pdf", "table")) == 1 and len(_rows(res, "good-page.pdf", "table")) == 1
    assert res.stats.dropped == {reason: 1 for reason in expected.values()}
    assert res.stats.total == res.stats.kept + len(expected)


def test_reingest_skips_known_content_and_follows_moved_files(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    corpus.ruled_table_pdf(docs / "a.pdf", [corpus.table_for(1), None])
    corpus.markdown_doc(docs / "b.md")
    corpus.html_doc(docs / "c.html")
    cache = docs / ".cache"  # hidden folders (a home, .git) inside an ingested folder are skipped
    cfg = IngestConfig(ocr={"enabled": False})
    first = run_ingest([docs], cfg, cache_dir=cache)
    again = run_ingest([docs], cfg, cache_dir=cache)
    assert first.files == again.files == 3
    assert first.extra["skipped_known"] == 0 and again.extra["skipped_known"] == 3
    pd.testing.assert_frame_equal(pd.concat(first.frames()), pd.concat(again.frames()))
    (docs / "b.md").write_text((docs / "b.md").read_text() + "\nOne more line.\n")  # changed content
    shutil.move(docs / "c.html", docs / "moved.html")  # same content, new path
    third = run_ingest([docs], cfg, cache_dir=cache)
    assert third.extra["skipped_known"] == 2  # a.pdf and the moved HTML; b.md is read again
    assert "One more line." in _rows(third, "b.md")[0]["text"]
    moved = _rows(third, "moved.html")
    assert moved and all(json.loads(r["meta"])["source"] == str(docs / "moved.html") for r in moved)
    changed_reader = run_ingest([docs], cfg.model_copy(update={"min_rulings": 2}), cache_dir=cache)
    assert changed_reader.extra["skipped_known"] == 0  # reader settings are part of the key


def test_chunks_overlap_by_tokens_and_split_tables_only_between_rows():
    text = " ".join(f"w{i}" for i in range(100))
    table = to_markdown([["k", "v"]] + [[f"r{i}", f"value {i}"] for i in range(30)])
    df = pd.DataFrame(
        [
            {"id": "d", "text": text, "source": "s", "page": 3, "kind": "text", "meta": '{"page": 3}'},
            {"id": "t", "text": table, "source": "s", "page": 3, "kind": "table", "meta": "{}"},
            {"id": "e", "text": "  ", "source": "s", "page": 3, "kind": "text", "meta": "{}"},
        ]
    )
    chunks, stats, info = Chunker(
        ChunkingConfig(tokenizer="whitespace", chunk_tokens=30, overlap_tokens=5), whitespace_encoder
    ).apply(df)
    words = [c.split() for c in chunks[chunks.kind == "text"].text]
    assert [w[0] for w in words] == ["w0", "w25", "w50", "w75"] and all(len(w) <= 30 for w in words)
    assert words[0][-5:] == words[1][:5]  # 5 tokens of overlap
    assert words[-1][-1] == "w99"
    metas = [json.loads(m) for m in chunks[chunks.kind == "text"].meta]
    assert [(m["chunk"], m["of"], m["parent_id"], m["page"]) for m in metas] == [(k, 4, "d", 3) for k in range(4)]
    assert text[slice(*metas[1]["chars"])] == chunks[chunks.kind == "text"].text.iloc[1]
    pieces = list(chunks[chunks.kind == "table"].text)
    assert len(pieces) > 1 and all(p.startswith("| k | v |\n|---|---|\n| r") for p in pieces)
    body = [ln for p in pieces for ln in p.splitlines()[2:]]
    assert body == table.splitlines()[2:]  # every row exactly once, none cut
    assert stats.as_dict()["dropped_empty"] == 1 and info["chunks"] == len(chunks)


def test_chunks_use_the_base_models_tokenizer(tmp_path):
    enc = encoder("smollm2-135m-instruct", tmp_path)
    text = "Cross-border purchases above the review threshold are checked first. " * 40
    df = pd.DataFrame([{"id": "d", "text": text, "source": "s", "page": 1, "kind": "text", "meta": "{}"}])
    chunks, _, info = Chunker(ChunkingConfig(chunk_tokens=64, overlap_tokens=8), enc).apply(df)
    counts = [len(enc(t)) for t in chunks.text]
    assert max(counts) <= 64 and len(enc(text)) > 64 * 5 and info["split_rows"] == 1
    assert [json.loads(m)["tokens"] for m in chunks.meta][:-1] == [64] * (len(chunks) - 1)


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="chunking: Value error, overlap_tokens"):
        validate(IngestConfig, {"chunking": {"chunk_tokens": 32, "overlap_tokens": 32}})
    with pytest.raises(ConfigError, match="nv_ingest_url is required"):
        validate(IngestConfig, {"backend": "nv_ingest"})
    with pytest.raises(ConfigError, match="ocr.dpi"):
        validate(IngestConfig, {"ocr": {"dpi": 10}})


def test_nv_ingest_elements_become_the_same_rows():
    from flywheel.ingest.nv_ingest import rows_from_elements
    from flywheel.ingest.readers import Doc

    def el(dtype, page, **md):
        return {
            "document_type": dtype,
            "metadata": {
                "content_metadata": {
                    "type": dtype,
                    "page_number": page,
                    "hierarchy": {"page_count": 3},
                    "subtype": md.pop("subtype", ""),
                },
                **md,
            },
        }

    elements = [
        el("text", 0, content="Policy text", text_metadata={"text_type": "page", "text_location": [0, 0, 10, 10]}),
        el(
            "structured",
            1,
            subtype="table",
            table_metadata={"table_content": "| a | b |\n|---|---|\n| 1 | 2 |", "table_location": [1, 2, 3, 4]},
        ),
        el("structured", 1, subtype="chart", table_metadata={"table_content": "Chargebacks January 42"}),
        el("image", 2, image_metadata={"caption": "A stamp", "text": "PAID"}),
        el("text", 2, content="", text_metadata={"text_type": "page"}),  # empty: dropped
    ]
    rows = rows_from_elements(elements, Doc("/d/x.pdf", "ab" * 32, IngestConfig()))
    assert [(r["kind"], r["page"], r["text"]) for r in rows] == [
        ("text", 1, "Policy text"),
        ("table", 2, "| a | b |\n|---|---|\n| 1 | 2 |"),
        ("image_text", 2, "Chargebacks January 42"),
        ("image_text", 3, "A stamp\nPAID"),
    ]
    assert json.loads(rows[1]["meta"])["bbox"] == [1.0, 2.0, 3.0, 4.0] and len({r["id"] for r in rows}) == 4


def test_nv_ingest_backend_without_its_client_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    from flywheel.ingest.nv_ingest import run_nv_ingest

    monkeypatch.setitem(sys.modules, "nv_ingest_client", None)  # as on a machine without the extra
    cfg = IngestConfig(backend="nv_ingest", nv_ingest_url="http://127.0.0.1:7670")
    with pytest.raises(ConfigError, match=r"pip install 'flywheel\[nv-ingest\]'"):
        run_nv_ingest([tmp_path], cfg, tmp_path / "cache")


def test_runs_on_a_dask_scheduler_address_and_still_cuts_hangs(tmp_path):
    """A real scheduler with worker processes (daemonic, as on a cluster): the sandbox still works there."""
    from distributed import LocalCluster

    docs = tmp_path / "docs"
    docs.mkdir()
    corpus.ruled_table_pdf(docs / "a.pdf", [corpus.table_for(1), None])
    corpus.hang_pdf(docs / "hang.pdf")
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        res = run_ingest(
            [docs],
            IngestConfig(timeout_s=8, ocr={"enabled": False}),
            dask_address=cluster.scheduler_address,
            cache_dir=tmp_path / "cache",
        )
    assert {q["path"].rsplit("/", 1)[1]: q["reason"] for q in res.quarantine} == {"hang.pdf": "timeout"}
    assert [r["kind"] for r in _rows(res, "a.pdf")] == ["text", "text", "table"]


def test_jsonl_blocks_cover_every_line_once_with_file_line_numbers(tmp_path, monkeypatch):
    """A big JSONL file is read as blocks of lines by parallel tasks: every line exactly once, whatever
    the block boundaries cut, with the line numbers (and fallback ids) of the whole file."""
    import json as _json

    from flywheel.ingest import formats
    from flywheel.ingest.config import IngestConfig
    from flywheel.ingest.readers import Doc

    lines = []
    for i in range(300):
        rec = {"text": f"record {i} " + "word " * (i % 17)} if i % 5 else {"id": f"r{i}", "text": f"record {i}"}
        lines.append(_json.dumps(rec) if i != 123 else "{not json")
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n")
    whole = formats.read_jsonl(Doc(str(path), "d" * 64, IngestConfig()))
    monkeypatch.setattr(formats, "JSONL_BLOCK_BYTES", 997)  # a prime: boundaries fall mid-line
    n = formats.jsonl_blocks(path.stat().st_size)
    assert n > 5
    doc = Doc(str(path), "d" * 64, IngestConfig())
    parts = [formats.read_jsonl(doc, a, min(a + 1, n)) for a in range(1, n + 1, 2)]
    assert [r for part in parts for r in part] == whole and len(whole) == 299
    assert [q["line"] for q in doc.quarantine] == [124]


def test_size_limit_spares_jsonl_which_is_read_in_blocks(tmp_path):
    """``max_file_bytes`` guards readers that hold a file whole; a JSONL file above it is still ingested
    (it is read in blocks of lines), a text file of the same size is quarantined as oversize."""
    records = [json.dumps({"id": f"r{i}", "text": f"record number {i} of a large corpus"}) for i in range(400)]
    (tmp_path / "big.jsonl").write_text("\n".join(records) + "\n")
    (tmp_path / "big.txt").write_text("plain prose line of a large text file\n" * 400)
    res = run_ingest([tmp_path], IngestConfig(max_file_bytes=4096, chunking={"enabled": False}))
    assert [(q["path"].rsplit("/", 1)[1], q["reason"]) for q in res.quarantine] == [("big.txt", "oversize")]
    assert len(_rows(res, "big.jsonl")) == 400
