"""Dataset contract and ingest: digests, quarantine of bad input, readers chosen by content."""

import json

import pandas as pd

from examples.corpus import ruled_table_pdf
from examples.documents import write_corrupt_pdf, write_policy_pdf
from flywheel.core.dataset import content_digest, read_dataset, write_dataset
from flywheel.ingest.engine import run_ingest


def test_digest_is_a_pure_function_of_content(tmp_path):
    df = pd.DataFrame({"id": ["a", "b"], "text": ["x y", "z"]})
    a = write_dataset(df, tmp_path, "d", config={"k": 1})
    b = write_dataset(df.copy(), tmp_path, "d", config={"k": 1})
    assert a.digest == b.digest == content_digest(df)
    assert a.path == b.path and a.manifest["created_at"] == b.manifest["created_at"]
    changed = write_dataset(df.assign(text=["x y", "z!"]), tmp_path, "d")
    assert changed.digest != a.digest
    back = read_dataset(a.path)
    assert back.rows == 2 and set(back.manifest["schema"]) == {"id", "text"}
    pd.testing.assert_frame_equal(back.to_pandas(), df, check_dtype=False)


def test_manifest_records_parents_and_config(tmp_path):
    parent = write_dataset(pd.DataFrame({"id": ["a"], "text": ["t"]}), tmp_path, "p")
    child = write_dataset(
        pd.DataFrame({"id": ["a"], "text": ["T"]}), tmp_path, "c", parents=[parent.digest], config={"min_words": 3}
    )
    m = json.loads((child.path / "manifest.json").read_text())
    assert m["parents"] == [parent.digest] and m["config"] == {"min_words": 3} and m["rows"] == 1


def test_corrupt_pdf_and_malformed_jsonl_line_are_quarantined_and_the_rest_goes_on(tmp_path):
    write_policy_pdf(tmp_path / "policy.pdf")
    write_corrupt_pdf(tmp_path / "broken.pdf")
    (tmp_path / "data.jsonl").write_text(
        '{"id": "r1", "text": "first good record", "label": "LEGIT"}\n'
        '{"id": "r2", "text": "second good record"\n'  # truncated JSON
        '["not", "an", "object"]\n'
        '{"id": "r4", "text": ""}\n'  # empty text
        '{"id": "r5", "text": "fifth good record"}\n'
    )
    (tmp_path / "empty.txt").write_text("")
    res = run_ingest([tmp_path])
    reasons = sorted((q["path"].split("/")[-1], q.get("line"), q["reason"]) for q in res.quarantine)
    assert reasons == [
        ("broken.pdf", None, "corrupt_pdf"),
        ("data.jsonl", 2, "malformed_jsonl"),
        ("data.jsonl", 3, "malformed_jsonl"),
        ("data.jsonl", 4, "malformed_jsonl"),
        ("empty.txt", None, "empty"),
    ]
    ids = {r["id"] for r in res.rows}
    assert {"r1", "r5"} <= ids
    pdf_rows = [r for r in res.rows if r["source"].endswith("policy.pdf")]
    assert [(r["page"], r["kind"]) for r in pdf_rows] == [(1, "text"), (2, "text"), (1, "table"), (2, "table")]
    assert "Cross-border" in pdf_rows[0]["text"] and "Card Fraud Review Policy" in pdf_rows[0]["text"]
    assert json.loads(next(r for r in res.rows if r["id"] == "r1")["meta"]) == {"label": "LEGIT"}
    assert res.stats.as_dict()["kept"] == len(res.rows) == 6  # 2 PDF pages + 2 tables + 2 good JSONL lines
    assert res.stats.total == 11  # 6 rows + 5 quarantined units
    assert res.stats.dropped["malformed_jsonl"] == 3 and res.stats.dropped["corrupt_pdf"] == 1


def test_reader_is_chosen_by_content_not_extension(tmp_path):
    write_policy_pdf(tmp_path / "manual.txt")  # a PDF with the wrong extension
    res = run_ingest([tmp_path / "manual.txt"])
    assert [r["page"] for r in res.rows if r["kind"] == "text"] == [1, 2]
    # read as the PDF it is; the wrong extension is reported, nothing is lost
    assert [(q["reason"], q["partial"]) for q in res.quarantine] == [("mislabelled", True)]
    assert res.stats.dropped == {} and res.extra["partial_failures"] == 1


def test_a_text_that_mentions_the_pdf_header_is_not_a_pdf(tmp_path):
    (tmp_path / "notes.md").write_text(
        "# PDF internals\n\nEvery file starts with %PDF-1.7 and a binary comment line.\n"
    )
    res = run_ingest([tmp_path / "notes.md"])
    assert res.quarantine == [] and [r["kind"] for r in res.rows] == ["text"]
    assert "%PDF-1.7" in res.rows[0]["text"]


def test_missing_and_binary_files_are_quarantined(tmp_path):
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    res = run_ingest([tmp_path / "blob.bin", tmp_path / "nope.pdf"])
    assert sorted(q["reason"] for q in res.quarantine) == ["missing", "unsupported_binary"]
    assert res.rows == []


def test_only_rows_with_label_and_answer_become_training_examples(tmp_path):
    from flywheel.training.data import labelled_rows

    df = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "text": ["t1", "t2", "t3"],
            "source": "s",
            "page": 0,
            "kind": "text",
            "meta": [json.dumps({"label": "FRAUD", "answer": "FRAUD: x"}), "{}", json.dumps({"label": "LEGIT"})],
        }
    )
    ds = write_dataset(df, tmp_path, "mixed")
    assert labelled_rows(str(ds.path)) == [
        {
            "id": "a",
            "text": "t1",
            "answer": "FRAUD: x",
            "label": "FRAUD",
            "source": "s",
            "meta": {"label": "FRAUD", "answer": "FRAUD: x"},
        }
    ]


def test_ruled_tables_are_extracted_cell_exact_and_only_on_pages_with_rulings(tmp_path):
    truth = {}
    pages = []
    for p in range(1, 9):
        if p % 3 == 0:
            pages.append(None)  # text-only page: the table parser must not even open it
            continue
        table = [["Region", "Q1", "Q2", "Owner"]] + [
            [f"R{p}-{r}", f"{p * 100 + r:,}", f"${r * 7.5:.2f}", f"team {r}|{p}"] for r in range(1, 5)
        ]
        truth[p] = table
        pages.append(table)
    ruled_table_pdf(tmp_path / "report.pdf", pages, text_lines=1)
    res = run_ingest([tmp_path / "report.pdf"])
    tables = {r["page"]: r for r in res.rows if r["kind"] == "table"}
    assert sorted(tables) == sorted(truth)
    assert res.extra["table_pages_scanned"] == len(truth)  # 6 of 8 pages
    from flywheel.ingest.tables import to_markdown

    for page, table in truth.items():
        assert tables[page]["text"] == to_markdown(table)
        meta = json.loads(tables[page]["meta"])
        assert (meta["rows"], meta["cols"], meta["pages"]) == (5, 4, 8) and len(meta["bbox"]) == 4
    assert "| R2-3 | 203 | $22.50 | team 3\\|2 |" in tables[2]["text"]  # the pipe in a cell is escaped
    assert len([r for r in res.rows if r["kind"] == "text"]) == 8
