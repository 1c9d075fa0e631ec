"""Tenants: API keys and per-tenant rate limits.

Keys live in the feedback store's database (table ``api_keys``) as SHA-256 hashes — the key itself is shown once,
by ``flywheel keys create`` — or in the gateway config (``api_keys``: tenant and ``sha256``). A key is
``fw-`` + 40 hex characters; ``prefix`` (its first 10 characters) names it in listings and ``keys revoke``.

Auth (``GatewaySettings.auth``): ``required`` — every request needs a valid key (401 otherwise); ``off`` — none
needed, the tenant is the ``X-Tenant`` header or ``user``; ``auto`` (default) — required as soon as a key has been
created (in the store or the config).

Rate limits are token buckets per tenant, refilled continuously: ``rpm`` requests and ``tpm`` tokens (prompt +
completion) per minute. A request is admitted while both buckets hold at least one unit; its tokens are charged
when it ends. Over a limit: :class:`RateLimited` with ``retry_after`` (HTTP 429 and ``Retry-After``).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, create_engine, select, update

from flywheel.core.errors import NotFound, RateLimited, Unauthorized

metadata = MetaData()
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(128), nullable=False, index=True),
    Column("prefix", String(16), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("revoked", DateTime(timezone=True), nullable=True),
)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Tenant:
    name: str
    rpm: int | None = None
    tpm: int | None = None
    key_prefix: str | None = None


class KeyStore:
    """API keys in a SQL database (the feedback store's URL), hashed."""

    def __init__(self, url: str, cache_s: float = 2.0):
        kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}} if url.startswith("sqlite") else {}
        self.engine = create_engine(url, future=True, **kwargs)
        metadata.create_all(self.engine)
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, Tenant | None]] = {}
        self._any: tuple[float, bool] = (0.0, False)

    def create(self, tenant: str, rpm: int | None = None, tpm: int | None = None) -> tuple[str, dict]:
        """A new key for ``tenant``: (the key, shown once; its record)."""
        key = "fw-" + secrets.token_hex(20)
        row = {"tenant": tenant, "prefix": key[:10], "sha256": key_hash(key), "rpm": rpm, "tpm": tpm}
        with self.engine.begin() as c:
            c.execute(api_keys.insert().values(**row, created=datetime.now(UTC)))
        self._any = (0.0, False)
        return key, {k: row[k] for k in ("tenant", "prefix", "rpm", "tpm")}

    def list(self) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(select(api_keys).order_by(api_keys.c.id)).mappings().all()
        return [
            {
                "tenant": r["tenant"],
                "prefix": r["prefix"],
                "rpm": r["rpm"],
                "tpm": r["tpm"],
                "created": r["created"].isoformat(),
                "revoked": r["revoked"].isoformat() if r["revoked"] else None,
            }
            for r in rows
        ]

    def revoke(self, prefix: str) -> int:
        """Revoke the keys whose prefix is ``prefix`` (as ``keys list`` shows it); NotFound if none is active."""
        with self.engine.begin() as c:
            n = c.execute(
                update(api_keys)
                .where(api_keys.c.prefix == prefix, api_keys.c.revoked.is_(None))
                .values(revoked=datetime.now(UTC))
            ).rowcount
        if not n:
            raise NotFound(f"no active key with prefix '{prefix}' (flywheel keys list)")
        self._cache.clear()
        return n

    def any_keys(self) -> bool:
        """Whether a key was ever created (revoking every key does not open the gateway again)."""
        now = time.monotonic()
        if now - self._any[0] < self.cache_s:
            return self._any[1]
        with self.engine.connect() as c:
            found = c.execute(select(api_keys.c.id).limit(1)).first() is not None
        self._any = (now, found)
        return found

    def lookup(self, key: str) -> Tenant | None:
        """The tenant of an active key (cached ``cache_s`` seconds: a revocation takes that long to apply)."""
        h = key_hash(key)
        now = time.monotonic()
        hit = self._cache.get(h)
        if hit and now - hit[0] < self.cache_s:
            return hit[1]
        with self.engine.connect() as c:
            r = (
                c.execute(select(api_keys).where(api_keys.c.sha256 == h, api_keys.c.revoked.is_(None)))
                .mappings()
                .first()
            )
        tenant = Tenant(r["tenant"], r["rpm"], r["tpm"], r["prefix"]) if r else None
        self._cache[h] = (now, tenant)
        return tenant


class Authenticator:
    """Who is calling: the key from ``Authorization: Bearer``, looked up in the config's keys and the store."""

    def __init__(
        self, mode: str, keys: KeyStore | None, configured: list[dict] | None = None, default_rpm=None, default_tpm=None
    ):
        self.mode, self.keys = mode, keys
        self.configured = {
            k["sha256"]: Tenant(k["tenant"], k.get("rpm") or default_rpm, k.get("tpm") or default_tpm, "config")
            for k in configured or []
        }
        self.default_rpm, self.default_tpm = default_rpm, default_tpm

    def required(self) -> bool:
        if self.mode == "required":
            return True
        if self.mode == "off":
            return False
        return bool(self.configured) or bool(self.keys and self.keys.any_keys())

    def tenant(self, authorization: str | None, claimed: str | None) -> Tenant:
        key = None
        if authorization and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        if not self.required():
            return Tenant(claimed or "default", self.default_rpm, self.default_tpm)
        if not key:
            raise Unauthorized("missing API key: send Authorization: Bearer <key> (flywheel keys create)")
        t = self.configured.get(key_hash(key)) or (self.keys.lookup(key) if self.keys else None)
        if t is None:
            raise Unauthorized("invalid or revoked API key")
        return Tenant(t.name, t.rpm or self.default_rpm, t.tpm or self.default_tpm, t.key_prefix)


class RateLimiter:
    """Token buckets per tenant: requests per minute and tokens per minute."""

    def __init__(self):
        self._buckets: dict[tuple[str, str], list[float]] = {}  # (tenant, kind) -> [level, last refill time]
        self._lock = threading.Lock()

    def _level(self, tenant: str, kind: str, per_minute: int, now: float) -> list[float]:
        b = self._buckets.setdefault((tenant, kind), [float(per_minute), now])
        b[0] = min(float(per_minute), b[0] + (now - b[1]) * per_minute / 60.0)
        b[1] = now
        return b

    def admit(self, t: Tenant, now: float | None = None) -> None:
        """Take one request from the tenant's bucket, or raise :class:`RateLimited`."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for kind, limit in (("requests", t.rpm), ("tokens", t.tpm)):
                if not limit:
                    continue
                b = self._level(t.name, kind, limit, now)
                if b[0] < 1:
                    wait = (1 - b[0]) * 60.0 / limit
                    raise RateLimited(f"tenant '{t.name}' is over its {limit} {kind} per minute", wait)
            if t.rpm:
                self._buckets[(t.name, "requests")][0] -= 1

    def charge(self, t: Tenant, tokens: int, now: float | None = None) -> None:
        """Charge a finished request's tokens (the bucket may go below zero: the next request waits)."""
        if not t.tpm or tokens <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            self._level(t.name, "tokens", t.tpm, now)[0] -= tokens
