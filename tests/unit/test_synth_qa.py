"""Synthetic question-answer pairs from the bundled policy PDFs (real ingest, the real MiniLM for the leakage
check): the extractive generator's pairs, the filters (each pair removed names its reason), the teacher path
through an OpenAI-compatible endpoint (a fake server scripted with one faithful, one invented, one duplicate
and one leaked pair), and the pairs as SFT rows and as KB judgments."""

import pytest

from examples.policies import QUESTIONS, write_policies
from flywheel.ingest.config import ChunkingConfig, IngestConfig
from flywheel.ingest.run import ingest_dataset
from flywheel.synth.config import SynthConfig
from flywheel.synth.qa import extractive_pairs, synthesize
from flywheel.training.data import check_columns
from tests.unit.test_gateway import serving

HOLDOUT = [q for q, _, _ in QUESTIONS]


@pytest.fixture(scope="module")
def df(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synth")
    write_policies(tmp / "pdfs")
    raw = IngestConfig(chunking=ChunkingConfig(enabled=False))
    return ingest_dataset([str(tmp / "pdfs")], "policies", raw, tmp / "ds", tmp / "cache").dataset.to_pandas()


def test_extractive_pairs_come_from_table_cells_and_headed_passages(df):
    pairs = extractive_pairs(df)
    cell = next(p for p in pairs if p["question"].endswith("what is the atm withdrawal for Premium?"))
    assert cell["answer"] == "$2,500" and cell["question"].startswith("According to the Fees and Limits Schedule")
    assert cell["evidence"] == "| Premium | $2,500 | $15,000 |"
    filing = next(p for p in pairs if p["question"].endswith("say about filing window?"))
    assert filing["answer"] == "A cardholder may dispute a transaction within 120 days of the transaction date."
    assert {p["kind"] for p in pairs} == {"table", "section"} and len(pairs) == 72


def test_filters_drop_leaks_and_the_rows_train_and_judge(df):
    rows, removed, counts = synthesize(df, SynthConfig(), HOLDOUT)
    assert counts["total"] == counts["kept"] + sum(v for k, v in counts.items() if k.startswith("dropped_"))
    assert counts["dropped_leak"] == len(removed) > 0 and set(removed["reason"]) == {"leak"}
    assert (removed["nearest_holdout"] >= 0.85).all()
    assert "According to the Merchant Category Risk Guide, what is the risk level for travel?" in set(
        removed["question"]
    )  # "What is the risk level of travel merchants?" is a test question
    check_columns(rows.to_dict("records"), "sft")  # text + answer: an SFT dataset as it is
    row = rows[rows["question"].str.contains("emergency cash for Premium")].iloc[0]
    why = "Rationale: The Travel and Card Use Abroad lists Premium with emergency cash $2,500."
    assert row["answer"] == f"$2,500\n{why}"
    no_leak_check = synthesize(df, SynthConfig(), [])[2]
    assert no_leak_check["dropped_leak"] == 0 and no_leak_check["kept"] == counts["kept"] + counts["dropped_leak"]


def test_a_teacher_behind_an_openai_endpoint_is_filtered(df):
    from tests.fake_openai import create_fake

    script = "\n".join([
        "What reverses a provisional credit? | the merchant proves the charge with a signed receipt | section 3",
        "What does the bank give cardholders? | a free holiday and a pony | invented",
        "What reverses a provisional credit? | a signed receipt | the same question again",
        "How many days does a cardholder have to dispute a transaction? | within 120 days | a test question",
    ])  # fmt: skip
    with serving(create_fake(answers={"teacher": script})) as url:
        cfg = SynthConfig(generator="teacher", teacher_url=url, teacher_model="teacher")
        rows, removed, counts = synthesize(df[df["source"].str.endswith("chargebacks.pdf")], cfg, HOLDOUT)
    n = counts["total"] // 4  # the scripted answer for each passage (ingest row) of the manual
    assert counts["teacher_unparsed"] == 0 and counts["total"] == 4 * n and n >= 2
    assert counts["dropped_unsupported"] >= n and counts["dropped_duplicate"] >= 1  # the pony, the repeats
    assert counts["dropped_leak"] == 1 and counts["kept"] == 1, (counts, removed[["question", "reason"]])
    assert set(removed["reason"]) == {"unsupported", "duplicate", "leak"}
    assert rows.iloc[0]["origin"] == "teacher" and rows.iloc[0]["short_answer"].startswith("the merchant proves")
    with pytest.raises(ValueError, match="teacher_url"):
        SynthConfig(generator="teacher")
