"""The feedback store (SQLAlchemy): SQLite with WAL by default, PostgreSQL by URL.

Interaction row: ``id, ts, workload, tenant, model, model_version, messages, response,
latency_ms, cache_hit, guard_flags, prompt_tokens, completion_tokens`` and, once given, ``rating (+1/-1),
correction, comment``.

Feedback is committed together with its event in an **outbox** row (one transaction): a relay
(``flywheel.feedback.outbox``) delivers the events at least once, so an events outage delays the retrain
trigger but never loses a count. Giving the same feedback twice is a no-op (same seq, no second event).

    store = FeedbackStore("sqlite:///.flywheel/feedback.db")
    iid = store.log_interaction(workload="fraud", messages=[...], response="LEGIT: ...", ...)
    store.add_feedback(iid, rating=-1, correction="FRAUD: ...")
    rows = store.training_rows("fraud", upto=w, after=store.consumed("fraud"))  # new SFT rows up to w
    pairs = store.preference_pairs("fraud")   # (prompt, chosen, rejected), for DPO
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    create_engine,
    event,
    func,
    select,
    update,
)

from flywheel.core.errors import DataError, UnknownInteraction

metadata = MetaData()
interactions = Table(
    "interactions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("ts", DateTime(timezone=True), nullable=False, index=True),
    Column("workload", String(64), nullable=False, index=True),
    Column("tenant", String(128), nullable=False, default="default"),
    Column("model", String(128), nullable=False),
    Column("model_version", String(64), nullable=True),
    Column("messages", Text, nullable=False),
    Column("response", Text, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("cache_hit", Boolean, nullable=False, default=False),
    Column("guard_flags", Text, nullable=False, default="[]"),
    Column("rating", Integer, nullable=True),
    Column("correction", Text, nullable=True),
    Column("comment", Text, nullable=True),
    Column("feedback_ts", DateTime(timezone=True), nullable=True),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
)
# Every feedback, in arrival order: its autoincrement ``seq`` is the watermark a retrain reads up to (the
# gateway puts it in the event; the trigger passes the firing event's). An interaction's feedback counts at
# the seq of its latest feedback.
feedback_log = Table(
    "feedback_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("interaction_id", String(64), nullable=False, index=True),
    Column("workload", String(64), nullable=False, index=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,  # never reuse a seq, even after deletes
)
# Which feedback each cycle consumed as its "new" slice: (previous watermark, watermark].
feedback_cycles = Table(
    "feedback_cycles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workload", String(64), nullable=False, index=True),
    Column("watermark", Integer, nullable=False),
    Column("consumed_by", String(128), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
)


outbox = Table(
    "outbox",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event", String(128), nullable=False),
    Column("event_id", String(36), nullable=False, unique=True),  # stable: a re-delivery is the same event
    Column("resource", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("delivered", DateTime(timezone=True), nullable=True, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
)

FEEDBACK_EVENT = "flywheel.feedback.received"
# Columns added after the first release: added to an existing database on open (nullable, no default).
_ADDED_COLUMNS = {"interactions": ("prompt_tokens", "completion_tokens")}


class FeedbackStoreProtocol(Protocol):
    def log_interaction(self, **fields) -> str: ...
    def add_feedback(
        self,
        interaction_id: str,
        rating: int | None,
        correction: str | None = None,
        comment: str | None = None,
        emit: bool = False,
    ) -> dict: ...
    def enqueue_event(self, event: str, workload: str, payload: dict) -> None: ...
    def pending_events(self, limit: int = 100) -> list[dict]: ...
    def mark_delivered(self, seqs: list[int]) -> None: ...
    def mark_failed(self, seqs: list[int], error: str) -> None: ...
    def outbox_counts(self) -> dict: ...
    def ping(self) -> None: ...
    def counts(self, workload: str | None = None) -> dict: ...
    def training_rows(self, workload: str) -> list[dict]: ...


class FeedbackStore:
    def __init__(self, url: str):
        self.url = url
        kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}} if url.startswith("sqlite") else {}
        self.engine = create_engine(url, future=True, **kwargs)
        if url.startswith("sqlite"):

            @event.listens_for(self.engine, "connect")
            def _wal(dbapi_conn, _):  # WAL: the gateway writes while flows read
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

        metadata.create_all(self.engine)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns a database made by an older release lacks (all nullable)."""
        from sqlalchemy import inspect, text

        insp = inspect(self.engine)
        for table, cols in _ADDED_COLUMNS.items():
            have = {c["name"] for c in insp.get_columns(table)}
            with self.engine.begin() as c:
                for col in cols:
                    if col not in have:
                        c.execute(text(f"ALTER TABLE {table} ADD COLUMN {col} INTEGER"))

    def log_interaction(
        self,
        *,
        workload: str,
        model: str,
        messages: list[dict],
        response: str,
        latency_ms: float,
        model_version: str | None = None,
        tenant: str = "default",
        cache_hit: bool = False,
        guard_flags: list[str] | None = None,
        interaction_id: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> str:
        iid = interaction_id or f"ix-{uuid.uuid4().hex}"
        with self.engine.begin() as c:
            c.execute(
                interactions.insert().values(
                    id=iid,
                    ts=datetime.now(UTC),
                    workload=workload,
                    tenant=tenant,
                    model=model,
                    model_version=model_version,
                    messages=json.dumps(messages),
                    response=response,
                    latency_ms=latency_ms,
                    cache_hit=cache_hit,
                    guard_flags=json.dumps(guard_flags or []),
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                )
            )
        return iid

    def add_feedback(
        self,
        interaction_id: str,
        rating: int | None,
        correction: str | None = None,
        comment: str | None = None,
        emit: bool = False,
    ) -> dict:
        """Record feedback on an interaction; returns the row with ``feedback_seq`` and ``duplicate`` (the same
        feedback was already recorded: nothing changes, no new seq, no second event). ``emit``: write the
        ``flywheel.feedback.received`` event to the outbox in the same transaction."""
        if rating not in (None, 1, -1):
            raise DataError("rating must be +1 or -1")
        if rating is None and not correction and not comment:
            raise DataError("feedback needs a rating, a correction or a comment")
        now = datetime.now(UTC)
        with self.engine.begin() as c:
            cur = c.execute(select(interactions).where(interactions.c.id == interaction_id)).mappings().first()
            if cur is None:
                raise UnknownInteraction(interaction_id)
            last = c.execute(
                select(func.max(feedback_log.c.seq)).where(feedback_log.c.interaction_id == interaction_id)
            ).scalar()
            same = (cur["rating"], cur["correction"], cur["comment"]) == (rating, correction, comment)
            if last is not None and same:
                return {**_decode(dict(cur)), "feedback_seq": int(last), "duplicate": True}
            c.execute(
                update(interactions)
                .where(interactions.c.id == interaction_id)
                .values(rating=rating, correction=correction, comment=comment, feedback_ts=now)
            )
            workload = cur["workload"]
            seq = int(
                c.execute(
                    feedback_log.insert().values(interaction_id=interaction_id, workload=workload, ts=now)
                ).inserted_primary_key[0]
            )
            if emit:
                payload = {
                    "interaction_id": interaction_id,
                    "rating": rating,
                    "has_correction": bool(correction),
                    "feedback_seq": seq,  # the watermark a retrain fired by this event reads up to
                    "model_version": cur["model_version"],
                }
                _write_event(c, FEEDBACK_EVENT, workload, payload, now)
        return {**self.get(interaction_id), "feedback_seq": seq, "duplicate": False}

    def enqueue_event(self, event: str, workload: str, payload: dict) -> None:
        """An event for the outbox relay (e.g. ``flywheel.model.rolled_back``), resource ``flywheel.workload.<w>``."""
        with self.engine.begin() as c:
            _write_event(c, event, workload, payload, datetime.now(UTC))

    def ping(self) -> None:
        """A cheap round trip to the database (readiness); raises when it cannot be reached."""
        from sqlalchemy import text

        with self.engine.connect() as c:
            c.execute(text("SELECT 1"))

    def pending_events(self, limit: int = 100) -> list[dict]:
        """Outbox events not delivered yet, oldest first."""
        q = select(outbox).where(outbox.c.delivered.is_(None)).order_by(outbox.c.seq).limit(limit)
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(q).mappings()]
        for r in rows:
            r["resource"], r["payload"] = json.loads(r["resource"]), json.loads(r["payload"])
            if r["created"].tzinfo is None:  # SQLite gives back naive datetimes; they were written in UTC
                r["created"] = r["created"].replace(tzinfo=UTC)
        return rows

    def mark_delivered(self, seqs: list[int]) -> None:
        with self.engine.begin() as c:
            c.execute(update(outbox).where(outbox.c.seq.in_(seqs)).values(delivered=datetime.now(UTC)))

    def mark_failed(self, seqs: list[int], error: str) -> None:
        with self.engine.begin() as c:
            c.execute(
                update(outbox)
                .where(outbox.c.seq.in_(seqs))
                .values(attempts=outbox.c.attempts + 1, last_error=error[:500])
            )

    def outbox_counts(self) -> dict:
        with self.engine.connect() as c:
            total, delivered = c.execute(select(func.count(), func.count(outbox.c.delivered))).one()
        return {"events": int(total), "delivered": int(delivered), "pending": int(total) - int(delivered)}

    def usage(self) -> dict[str, dict]:
        """Per tenant: requests, prompt and completion tokens (from the interaction log)."""
        q = select(
            interactions.c.tenant,
            func.count(),
            func.coalesce(func.sum(interactions.c.prompt_tokens), 0),
            func.coalesce(func.sum(interactions.c.completion_tokens), 0),
        ).group_by(interactions.c.tenant)
        with self.engine.connect() as c:
            return {
                t: {"requests": int(n), "prompt_tokens": int(p), "completion_tokens": int(o)}
                for t, n, p, o in c.execute(q)
            }

    def get(self, interaction_id: str) -> dict:
        with self.engine.connect() as c:
            row = c.execute(select(interactions).where(interactions.c.id == interaction_id)).mappings().first()
        if row is None:
            raise UnknownInteraction(interaction_id)
        return _decode(dict(row))

    def list(
        self,
        workload: str | None = None,
        with_feedback: bool = False,
        limit: int | None = None,
        since=None,
        tenant: str | None = None,
    ) -> list[dict]:
        """Interactions oldest first; ``since``: logged at or after this time (ISO string or datetime, UTC)."""
        q = select(interactions).order_by(interactions.c.ts)
        if workload:
            q = q.where(interactions.c.workload == workload)
        if tenant is not None:
            q = q.where(interactions.c.tenant == tenant)
        if since is not None:
            t = datetime.fromisoformat(since) if isinstance(since, str) else since
            q = q.where(interactions.c.ts >= (t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)))
        if with_feedback:
            q = q.where(interactions.c.feedback_ts.is_not(None))
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as c:
            return [_decode(dict(r)) for r in c.execute(q).mappings()]

    def counts(self, workload: str | None = None) -> dict:
        def n(cond):
            return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

        q = select(
            func.count(),
            func.count(interactions.c.feedback_ts),
            n(interactions.c.rating > 0),
            n(interactions.c.rating < 0),
            func.count(interactions.c.correction),
        )
        if workload:
            q = q.where(interactions.c.workload == workload)
        with self.engine.connect() as c:
            total, fb, pos, neg, corr = c.execute(q).one()
        return {
            "interactions": total,
            "feedback": fb,
            "positive": int(pos or 0),
            "negative": int(neg or 0),
            "corrections": corr,
        }

    def forget(self, tenant: str | None = None, ids: list[str] | None = None, dry_run: bool = False) -> list[dict]:
        """Delete a tenant's interactions (or the given ones) with their feedback and feedback-log rows, in one
        transaction; the rows deleted (id, workload, tenant, whether they carried feedback). ``dry_run``: only
        list them. The feedback-log's seqs are never reused, so later watermarks stay valid."""
        if (tenant is None) == (ids is None):
            raise DataError("forget: give a tenant or interaction ids (one of the two)")
        cond = interactions.c.tenant == tenant if tenant is not None else interactions.c.id.in_(list(ids))
        cols = (interactions.c.id, interactions.c.workload, interactions.c.tenant, interactions.c.feedback_ts)
        with self.engine.begin() as c:
            rows = [
                {"id": i, "workload": w, "tenant": t, "had_feedback": ts is not None}
                for i, w, t, ts in c.execute(select(*cols).where(cond))
            ]
            if rows and not dry_run:
                found = [r["id"] for r in rows]
                c.execute(feedback_log.delete().where(feedback_log.c.interaction_id.in_(found)))
                c.execute(interactions.delete().where(interactions.c.id.in_(found)))
        return rows

    def watermark(self, workload: str) -> int:
        """The newest feedback's seq for the workload (0: none yet)."""
        with self.engine.connect() as c:
            q = select(func.max(feedback_log.c.seq)).where(feedback_log.c.workload == workload)
            return int(c.execute(q).scalar() or 0)

    def consumed(self, workload: str) -> int:
        """The watermark up to which earlier cycles have consumed the feedback as new (0: none)."""
        with self.engine.connect() as c:
            q = select(func.max(feedback_cycles.c.watermark)).where(feedback_cycles.c.workload == workload)
            return int(c.execute(q).scalar() or 0)

    def mark_consumed(self, workload: str, watermark: int, consumed_by: str, rows: int) -> None:
        """Record that a cycle used the feedback up to ``watermark`` as its new slice (the next one starts after)."""
        with self.engine.begin() as c:
            c.execute(
                feedback_cycles.insert().values(
                    workload=workload, watermark=watermark, consumed_by=consumed_by, rows=rows, ts=datetime.now(UTC)
                )
            )

    def _seqs(self, workload: str) -> dict[str, int]:
        """interaction id -> the seq of its latest feedback."""
        q = (
            select(feedback_log.c.interaction_id, func.max(feedback_log.c.seq))
            .where(feedback_log.c.workload == workload)
            .group_by(feedback_log.c.interaction_id)
        )
        with self.engine.connect() as c:
            return {i: int(s) for i, s in c.execute(q)}

    def training_rows(self, workload: str, upto: int | None = None, after: int = 0) -> list[dict]:
        """SFT rows from feedback given in ``(after, upto]`` (by feedback seq; ``upto`` None: all so far): a
        correction wins; else a positively rated response is kept. Each row says ``kind`` (correction |
        approved) and its ``feedback_seq``.

        A negatively rated response without a correction teaches nothing for SFT (it is DPO's
        'rejected' side, issue 5) and is left out. Feedback stored before the log existed counts as seq 0.
        """
        seqs = self._seqs(workload)
        out = []
        for r in self.list(workload, with_feedback=True):
            seq = seqs.get(r["id"], 0)
            legacy = seq == 0 and after == 0  # feedback from before the log: part of the first window
            if not (seq > after or legacy) or (upto is not None and seq > upto):
                continue
            user = next((m["content"] for m in reversed(r["messages"]) if m.get("role") == "user"), None)
            if not user or any(f.startswith("blocked") for f in r["guard_flags"]):
                continue  # a refusal (or a correction of one) is not a label of the workload
            answer = r["correction"] or (r["response"] if r["rating"] == 1 else None)
            if answer:
                label = answer.split(":", 1)[0].strip().upper()
                out.append(
                    {
                        "id": f"fb-{r['id']}",
                        "text": user,
                        "answer": answer,
                        "label": label,
                        "source": "feedback",
                        "rating": r["rating"],
                        "kind": "correction" if r["correction"] else "approved",
                        "feedback_seq": seq,
                    }
                )
        return out

    def preference_pairs(self, workload: str, upto: int | None = None, after: int = 0) -> list[dict]:
        """DPO pairs from feedback, one per negatively rated answer that has a better answer to set against it.

        chosen = the user's correction of that answer, else a positively rated answer to the same prompt
        (the same conversation up to the last user turn; the latest such answer); rejected = the
        negatively rated answer. A correction equal to the rejected answer teaches nothing and is skipped.
        Rows: ``id, prompt`` (the conversation, JSON), ``chosen, rejected, source``. ``upto``/``after`` bound the
        rejected answers' feedback seqs as in :meth:`training_rows`.
        """
        rows = self.list(workload, with_feedback=True)
        seqs = self._seqs(workload)
        liked: dict[str, str] = {}
        for r in rows:
            if r["rating"] == 1:
                liked[json.dumps(r["messages"], sort_keys=True)] = r["correction"] or r["response"]
        out = []
        for r in rows:
            seq = seqs.get(r["id"], 0)
            in_window = (seq > after or (seq == 0 and after == 0)) and (upto is None or seq <= upto)
            if r["rating"] != -1 or not in_window or any(f.startswith("blocked") for f in r["guard_flags"]):
                continue
            key = json.dumps(r["messages"], sort_keys=True)
            chosen = r["correction"] or liked.get(key)
            if not chosen or chosen.strip() == r["response"].strip():
                continue
            out.append(
                {
                    "id": f"pref-{r['id']}",
                    "prompt": json.dumps(r["messages"]),
                    "chosen": chosen,
                    "rejected": r["response"],
                    "source": "feedback",
                }
            )
        return out


def _write_event(c, event: str, workload: str, payload: dict, created) -> None:
    """An outbox row in the caller's transaction; its id is fixed here, so every re-delivery sends the same one."""
    resource = {"prefect.resource.id": f"flywheel.workload.{workload}", "flywheel.workload": workload}
    c.execute(
        outbox.insert().values(
            event=event,
            event_id=str(uuid.uuid4()),
            resource=json.dumps(resource),
            payload=json.dumps(payload),
            created=created,
            attempts=0,
        )
    )


def _decode(row: dict) -> dict:
    row["messages"] = json.loads(row["messages"])
    row["guard_flags"] = json.loads(row["guard_flags"])
    for k in ("ts", "feedback_ts"):
        if row.get(k) is not None:
            row[k] = row[k].isoformat()
    return row
