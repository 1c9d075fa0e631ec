"""The knowledge base's bundled corpus: a card-operations policy library of PDF manuals, each with headed sections
and ruled tables, written for this project with distinct, checkable facts (days, fees, limits, thresholds) —
and the hand-checked questions about them (``QUESTIONS``: each with the evidence string that answers it and
the manual it is in; checked by hand against the PDFs' text, so a retrieved chunk is relevant when it contains
the evidence).

    python -m examples.policies --out .flywheel/data/fraud/policies
"""

from __future__ import annotations

import argparse
from pathlib import Path

# (file stem, title, [(heading, paragraph)], [(table title, header, rows)])
MANUALS = [
    (
        "chargebacks",
        "Chargeback and Dispute Policy",
        [
            ("1. Scope", "This policy covers disputes that cardholders raise about card transactions, from the "
             "first contact to the final chargeback decision."),
            ("2. Filing window", "A cardholder may dispute a transaction within 120 days of the transaction date. "
             "Disputes raised after 120 days are declined unless the merchant agrees to a refund."),
            ("3. Provisional credit", "The bank posts a provisional credit within 10 business days of a complete "
             "dispute and reverses it if the merchant proves the charge with a signed receipt."),
            ("4. Evidence", "Analysts request the merchant's evidence once; the merchant has 30 days to answer "
             "before the dispute is decided in the cardholder's favour."),
        ],
        [("Dispute reason codes", ["Code", "Reason", "Evidence required"],
          [["10.4", "Card-absent fraud", "cardholder declaration"], ["13.1", "Goods not received",
           "proof of delivery"], ["13.3", "Not as described", "photos and description"],
           ["12.6", "Duplicate processing", "both receipts"]])],
    ),
    (
        "card-replacement",
        "Card Replacement and Blocking Policy",
        [
            ("1. Lost or stolen cards", "A card reported lost or stolen is blocked immediately and cannot be "
             "unblocked; a replacement card with a new number is issued the same day."),
            ("2. Delivery", "Standard replacement cards arrive within 5 to 7 business days. Express delivery "
             "within 2 business days costs $25 and is free for premium accounts."),
            ("3. Temporary freeze", "Customers can freeze a misplaced card in the app for up to 30 days; a frozen "
             "card declines every purchase but recurring payments continue."),
            ("4. Damaged cards", "A damaged card keeps its number: the replacement reuses the card number and "
             "expiry date so that recurring payments are not interrupted."),
        ],
        [("Replacement fees", ["Account", "Standard replacement", "Express replacement"],
          [["Basic", "$5", "$25"], ["Plus", "free", "$15"], ["Premium", "free", "free"]])],
    ),
    (
        "fees-and-limits",
        "Fees and Limits Schedule",
        [
            ("1. Foreign transactions", "Purchases in a foreign currency carry a foreign transaction fee of 2.5 "
             "percent of the amount, shown as a separate line on the statement."),
            ("2. Cash withdrawals", "ATM withdrawals are free at the bank's own machines; other ATMs charge $3 per "
             "withdrawal plus the operator's own fee."),
            ("3. Late payment", "A payment received after the due date incurs a late fee of $29, or $40 if a "
             "payment was also late in any of the previous six statement periods."),
            ("4. Limit changes", "A customer may request a credit limit increase once every 6 months; the "
             "decision is made within 2 business days."),
        ],
        [("Daily limits", ["Account", "ATM withdrawal", "Card purchases"],
          [["Basic", "$500", "$2,000"], ["Plus", "$1,000", "$5,000"], ["Premium", "$2,500", "$15,000"]])],
    ),
    (
        "travel",
        "Travel and Card Use Abroad",
        [
            ("1. Travel notices", "Customers should set a travel notice in the app at least 24 hours before "
             "departure, listing every country they will visit."),
            ("2. Blocked regions", "Card-present purchases in a country not on the travel notice are declined "
             "between 00:00 and 05:00 local time and sent to the fraud queue."),
            ("3. Emergency cash", "A customer abroad whose card is lost can receive emergency cash of up to $1,000 "
             "at a partner agency within 24 hours."),
            ("4. Dynamic currency conversion", "Customers are advised to pay in the local currency: dynamic "
             "currency conversion at the terminal typically costs 3 to 7 percent more."),
        ],
        [("Travel support by account", ["Account", "Emergency cash", "Replacement abroad"],
          [["Basic", "$500", "10 business days"], ["Plus", "$1,000", "5 business days"],
           ["Premium", "$2,500", "2 business days"]])],
    ),
    (
        "kyc",
        "Customer Identification and Account Opening",
        [
            ("1. Identity documents", "New customers present one government photo identity document and one proof "
             "of address dated within the last 3 months."),
            ("2. Young accounts", "During the first 30 days after opening, an account is young: its card "
             "purchases above $500 are reviewed by an analyst before they settle."),
            ("3. Enhanced due diligence", "Customers who move more than $10,000 in a calendar month go through "
             "enhanced due diligence, with a source-of-funds declaration."),
            ("4. Record keeping", "Identification records are kept for 5 years after the account is closed."),
        ],
        [("Review triggers", ["Trigger", "Threshold", "Action"],
          [["Account age", "under 30 days", "analyst review above $500"], ["Monthly volume",
           "over $10,000", "enhanced due diligence"], ["Address change", "within 7 days of a card order",
           "call-back verification"]])],
    ),
    (
        "merchant-risk",
        "Merchant Category Risk Guide",
        [
            ("1. Why categories matter", "Stolen cards are first used where goods resell easily; the merchant "
             "category is therefore part of every fraud rule."),
            ("2. Gift cards", "Gift card purchases above $250 on a card-not-present transaction always require "
             "3-D Secure authentication."),
            ("3. Crypto exchanges", "Purchases at crypto exchanges are limited to $2,000 per day per card and are "
             "blocked for accounts younger than 30 days."),
            ("4. Low-risk categories", "Grocery and fuel purchases under $100 are approved without review, even "
             "at night."),
        ],
        [("Category risk levels", ["Category", "Risk level", "Review above"],
          [["electronics", "high", "$600"], ["gift cards", "high", "$250"], ["crypto", "high", "$900"],
           ["travel", "medium", "$700"], ["restaurants", "low", "$400"], ["grocery", "low", "$100"]])],
    ),
]  # fmt: skip

# Hand-checked: (question, evidence that answers it — a phrase in exactly one manual's text, manual stem)
QUESTIONS = [
    (
        "How many days does a cardholder have to dispute a transaction?",
        "within 120 days of the transaction date",
        "chargebacks",
    ),
    ("When is provisional credit posted after a dispute?", "provisional credit within 10 business days", "chargebacks"),
    ("How long does a merchant have to answer a dispute?", "the merchant has 30 days to answer", "chargebacks"),
    ("What evidence is required for reason code 13.1 goods not received?", "proof of delivery", "chargebacks"),
    ("Which reason code is duplicate processing?", "Duplicate processing", "chargebacks"),
    ("Can a card reported stolen be unblocked?", "cannot be unblocked", "card-replacement"),
    ("How long does a standard replacement card take to arrive?", "within 5 to 7 business days", "card-replacement"),
    (
        "How much does express card delivery cost?",
        "Express delivery within 2 business days costs $25",
        "card-replacement",
    ),
    ("For how long can I freeze my card in the app?", "for up to 30 days", "card-replacement"),
    (
        "Does a damaged card replacement keep the same number?",
        "reuses the card number and expiry date",
        "card-replacement",
    ),
    ("What is the standard replacement fee for a Basic account?", "| Basic | $5 | $25 |", "card-replacement"),
    ("What is the foreign transaction fee?", "foreign transaction fee of 2.5 percent", "fees-and-limits"),
    ("How much do other banks' ATMs charge per withdrawal?", "other ATMs charge $3 per withdrawal", "fees-and-limits"),
    ("What is the late payment fee?", "late fee of $29", "fees-and-limits"),
    ("How often can I ask for a credit limit increase?", "once every 6 months", "fees-and-limits"),
    (
        "What is the daily ATM withdrawal limit of a Premium account?",
        "| Premium | $2,500 | $15,000 |",
        "fees-and-limits",
    ),
    ("What is the daily card purchase limit for Plus accounts?", "| Plus | $1,000 | $5,000 |", "fees-and-limits"),
    ("How early should a travel notice be set before departure?", "at least 24 hours before departure", "travel"),
    (
        "Are purchases at night declined in countries missing from the travel notice?",
        "between 00:00 and 05:00 local time",
        "travel",
    ),
    ("How much emergency cash can I get abroad if my card is lost?", "emergency cash of up to $1,000", "travel"),
    ("How much more does dynamic currency conversion cost?", "3 to 7 percent more", "travel"),
    (
        "How long does a replacement card abroad take for a Basic account?",
        "| Basic | $500 | 10 business days |",
        "travel",
    ),
    ("Which identity documents does a new customer need?", "one government photo identity document", "kyc"),
    ("How old may the proof of address be?", "dated within the last 3 months", "kyc"),
    ("Which purchases of a young account are reviewed?", "card purchases above $500 are reviewed", "kyc"),
    ("When does enhanced due diligence apply?", "more than $10,000 in a calendar month", "kyc"),
    ("How long are identification records kept?", "kept for 5 years after the account is closed", "kyc"),
    ("What happens when an address changes within 7 days of a card order?", "call-back verification", "kyc"),
    ("When do gift card purchases require 3-D Secure?", "Gift card purchases above $250", "merchant-risk"),
    ("What is the daily limit at crypto exchanges?", "limited to $2,000 per day per card", "merchant-risk"),
    ("Are grocery purchases reviewed at night?", "under $100 are approved without review", "merchant-risk"),
    ("Above what amount are electronics purchases reviewed?", "| electronics | high | $600 |", "merchant-risk"),
    ("What is the risk level of travel merchants?", "| travel | medium | $700 |", "merchant-risk"),
    ("Why is the merchant category part of every fraud rule?", "goods resell easily", "merchant-risk"),
]


# Relational questions: the answer joins facts from more than one section, table or manual (written before the
# graph retriever was built, so it could not be tuned to them): (question, [evidence, ...]) — a chunk is relevant
# when it contains any of the evidence strings.
RELATIONAL = [
    ("Which rules apply to accounts younger than 30 days?",
     ["card purchases above $500 are reviewed", "blocked for accounts younger than 30 days"]),
    ("What do Premium accounts get for card replacement and for travel support?",
     ["| Premium | free | free |", "| Premium | $2,500 | 2 business days |"]),
    ("How are gift cards treated across the fraud rules?",
     ["Gift card purchases above $250", "| gift cards | high | $250 |"]),
    ("What happens to recurring payments when a card is frozen or damaged?",
     ["recurring payments continue", "so that recurring payments are not interrupted"]),
    ("Which limits and support apply to a Plus account, at home and abroad?",
     ["| Plus | $1,000 | $5,000 |", "| Plus | $1,000 | 5 business days |"]),
    ("How is a lost card handled when the customer is abroad?",
     ["A customer abroad whose card is lost", "blocked immediately and cannot be unblocked"]),
    ("Which fees are charged as a percentage of the amount?",
     ["foreign transaction fee of 2.5 percent", "3 to 7 percent more"]),
    ("Which thresholds above $10,000 lead to a review of the customer?",
     ["more than $10,000 in a calendar month", "| Monthly volume | over $10,000 | enhanced due diligence |"]),
    ("What do the policies require from merchants in a dispute?",
     ["the merchant has 30 days to answer", "signed receipt"]),
    ("Which purchases are related to night-time declines or approvals?",
     ["between 00:00 and 05:00 local time", "approved without review, even at night"]),
    ("What connects crypto exchanges and the daily purchase limits of accounts?",
     ["limited to $2,000 per day per card", "| Basic | $500 | $2,000 |"]),
    ("Which delivery times apply to replacement cards at home and abroad?",
     ["within 5 to 7 business days", "| Premium | $2,500 | 2 business days |"]),
]  # fmt: skip

# Summary questions: about a whole manual (evidence: its title, which every chunk of it carries).
SUMMARY = [
    ("Summarise the chargeback and dispute policy.", ["Chargeback and Dispute Policy"]),
    ("Give me an overview of the rules for using a card abroad.", ["Travel and Card Use Abroad"]),
    ("What does the customer identification manual cover?", ["Customer Identification and Account Opening"]),
    ("Summarize the fees and limits schedule.", ["Fees and Limits Schedule"]),
    ("Outline the merchant category risk guide.", ["Merchant Category Risk Guide"]),
    ("Give an overview of card replacement and blocking.", ["Card Replacement and Blocking Policy"]),
]  # fmt: skip


def write_manual(path: Path, title: str, sections: list, tables: list) -> Path:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    ruled = TableStyle(
        [("GRID", (0, 0), (-1, -1), 0.5, colors.black), ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey)]
    )
    story = [Paragraph(title, styles["Title"])]
    for heading, text in sections:
        story += [Paragraph(heading, styles["Heading2"]), Paragraph(text, styles["BodyText"])]
    for table_title, header, rows in tables:
        story += [Spacer(1, 12), Paragraph(table_title, styles["Heading2"]), Table([header, *rows], style=ruled)]
    path.parent.mkdir(parents=True, exist_ok=True)
    SimpleDocTemplate(str(path), pagesize=A4, title=title).build(story)
    return path


def write_policies(out: Path) -> list[Path]:
    return [write_manual(Path(out) / f"{stem}.pdf", title, secs, tables) for stem, title, secs, tables in MANUALS]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    for path in write_policies(a.out):
        print(path)


if __name__ == "__main__":
    main()
