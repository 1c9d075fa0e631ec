"""Sample documents for the fraud workload: a policy manual PDF with ruled tables, a short
operations note, held-out general English text for perplexity, and one corrupt PDF that ingest
must quarantine (it shows that bad input is reported and loses nothing).

    python -m examples.documents --out .flywheel/data/fraud
"""

from __future__ import annotations

import argparse
from pathlib import Path

GENERAL_TEXT = """\
The history of the bicycle begins in the early nineteenth century, when inventors in Europe built
wooden machines that riders pushed along with their feet. Pedals came later, and with them the
question of how to make a machine that was both stable and fast. Over several decades designers
tried enormous front wheels, solid rubber tyres and frames of iron before settling on the shape
that most people ride today: two wheels of equal size, a chain that drives the rear wheel, and a
diamond-shaped frame made of steel tubes.

Gardening rewards patience. A tomato plant set out in late spring needs warm soil, steady water
and plenty of sun, and it will not hurry no matter how often it is inspected. Experienced gardeners
keep notes from year to year: which varieties cracked in a wet August, which ones ripened before
the first frost, and which corner of the plot stayed shaded in the afternoon.

Public libraries lend far more than books. Many of them offer quiet rooms for study, free classes
in languages and computing, community notice boards, and collections of tools, seeds or musical
instruments that members can borrow for a few weeks. Librarians often say that their most
important work is helping people find reliable information when they do not know where to start.

Rivers shape the land they cross. Over thousands of years a river carves valleys, deposits rich
soil on its flood plain, and shifts its course as banks erode on the outside of each bend. Towns
grew up where rivers could be crossed or where boats could unload, which is why so many old city
centres sit beside water.

Learning to cook a few simple meals well is more useful than knowing many recipes badly. A pot of
soup, a loaf of bread and a pan of roasted vegetables use the same basic skills: measuring, timing,
tasting and adjusting. Once those habits are in place, new dishes become variations on familiar
themes rather than daunting projects.
"""

OPS_NOTE = """\
Operations note: weekend coverage for the fraud desk.
Analysts on the weekend rota review the queue every two hours. Transactions flagged by velocity
rules are reviewed first, then cross-border purchases above the review threshold, then night-time
purchases in high-risk merchant categories. Every decision is recorded with a one-line reason so
that the model and the rules can be audited later.
"""


def write_policy_pdf(path: Path) -> Path:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    ruled = TableStyle(
        [("GRID", (0, 0), (-1, -1), 0.5, colors.black), ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey)]
    )
    story = [
        Paragraph("Card Fraud Review Policy", styles["Title"]),
        Paragraph("1. Purpose", styles["Heading2"]),
        Paragraph(
            "This manual tells analysts when a card transaction must be treated as suspected fraud. "
            "Each rule below was derived from confirmed chargebacks of the last four quarters. A "
            "transaction that meets any rule is answered FRAUD with the rule as its reason; otherwise "
            "it is LEGIT.",
            styles["BodyText"],
        ),
        Spacer(1, 12),
        Paragraph("2. Review thresholds", styles["Heading2"]),
        Table(
            [
                ["Rule", "Condition", "Threshold"],
                ["Cross-border", "card country differs from merchant country", "amount >= $1,000"],
                ["Velocity", "transactions in the past hour", ">= 5"],
                ["Night risk", "00:00-04:59 in a high-risk category", "any amount"],
            ],
            style=ruled,
        ),
        PageBreak(),
        Paragraph("3. Merchant categories", styles["Heading2"]),
        Paragraph("High-risk categories resell easily and are targeted first by stolen cards.", styles["BodyText"]),
        Spacer(1, 12),
        Table(
            [
                ["Category", "Risk", "Typical amount"],
                ["electronics", "high", "$600"],
                ["gift cards", "high", "$300"],
                ["crypto", "high", "$900"],
                ["travel", "medium", "$700"],
                ["grocery", "low", "$60"],
                ["fuel", "low", "$50"],
            ],
            style=ruled,
        ),
        Spacer(1, 12),
        Paragraph("4. Escalation", styles["Heading2"]),
        Paragraph(
            "Analysts escalate to the duty manager when a customer disputes a FRAUD decision within "
            "24 hours, or when three rules fire on the same card in one day.",
            styles["BodyText"],
        ),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    SimpleDocTemplate(str(path), pagesize=A4, title="Card Fraud Review Policy").build(story)
    return path


def write_corrupt_pdf(path: Path) -> Path:
    """A PDF header and end marker around garbage: a corrupt file (a cut one is ``truncated``)."""
    path.write_bytes(
        b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"
    )
    return path


def write_documents(out: Path) -> dict:
    docs = out / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    write_policy_pdf(docs / "fraud-policy.pdf")
    (docs / "ops-note.txt").write_text(OPS_NOTE)
    write_corrupt_pdf(docs / "scan-upload-corrupt.pdf")
    (out / "general.txt").write_text(GENERAL_TEXT)
    return {"documents": str(docs), "general_text": str(out / "general.txt")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    write_documents(p.parse_args(argv).out)


if __name__ == "__main__":
    main()
