"""The composition root: the one place that turns Settings into wired services.

Entry points (the HTTP app factory, the CLI, test fixtures) call `build_services`; nothing
else constructs a service, a repository or the database engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from gatehouse.server.accounts.admin import AdminService
from gatehouse.server.accounts.passwords import PasswordHasher
from gatehouse.server.accounts.recovery import RecoveryService
from gatehouse.server.accounts.service import AccountService
from gatehouse.server.apikeys.service import ApiKeyService
from gatehouse.server.audit.models import Actor
from gatehouse.server.audit.service import AuditService
from gatehouse.server.callers import Authenticator
from gatehouse.server.clock import Clock, SystemClock
from gatehouse.server.config import DATABASE_FILE_NAME, Settings
from gatehouse.server.devices.licenses import LicenseService
from gatehouse.server.devices.service import DeviceService
from gatehouse.server.errors import StorageUnavailableError
from gatehouse.server.limits.guard import AbuseGuard, LimitPolicy
from gatehouse.server.limits.store import LimitStore, MemoryLimitStore
from gatehouse.server.mail.outbox import MailOutbox, outbox_cipher
from gatehouse.server.mail.templates import MailTemplates
from gatehouse.server.mail.transports import FileTransport, MailTransport, SmtpTransport
from gatehouse.server.metrics import MetricsScrape, StateGauges
from gatehouse.server.secret import SECRET_FILE_NAME, OpaqueTokens, ServerSecret
from gatehouse.server.sessions.cache import InvalidationWatcher, PrincipalCache
from gatehouse.server.sessions.service import SessionService
from gatehouse.server.storage.account_tokens import SqlAccountTokenRepository
from gatehouse.server.storage.apikeys import SqlApiKeyRepository
from gatehouse.server.storage.audit import SqlAuditRecorder, SqlAuditRepository
from gatehouse.server.storage.database import Database
from gatehouse.server.storage.devices import SqlDeviceRepository
from gatehouse.server.storage.invalidations import InvalidationLog
from gatehouse.server.storage.keys import SqlSigningKeyRepository
from gatehouse.server.storage.licenses import SqlLicenseRepository
from gatehouse.server.storage.outbox import SqlOutboxRepository
from gatehouse.server.storage.redis_limits import RedisLimitStore
from gatehouse.server.storage.sessions import SqlSessionRepository
from gatehouse.server.storage.users import SqlUserRepository
from gatehouse.server.tokens.issuer import AccessTokenIssuer
from gatehouse.server.tokens.service import KeyService, retire_after
from gatehouse.verifier.jwt import AccessTokenVerifier

log = logging.getLogger("gatehouse")

# Verified access tokens remembered per process (about 1 KiB each).
_VERIFIED_TOKEN_CACHE = 10_000
# A cached principal is re-read from the database at least this often, whatever happens.
_PRINCIPAL_CACHE_TTL_SECONDS = 30.0
# Ended sessions are pruned this often, first 1-2 minutes after start (spread over workers).
_PRUNE_INTERVAL_SECONDS = 3600.0
_PRUNE_FIRST_AFTER_SECONDS = (60.0, 120.0)


@dataclass(slots=True)
class Services:
    settings: Settings
    clock: Clock
    db: Database
    hasher: PasswordHasher
    guard: AbuseGuard
    accounts: AccountService
    admin: AdminService
    keys: KeyService
    sessions: SessionService
    api_keys: ApiKeyService
    devices: DeviceService
    licenses: LicenseService
    authenticator: Authenticator
    verifier: AccessTokenVerifier
    watcher: InvalidationWatcher
    # GET /metrics; `metrics.gauges.add(...)` is the hook for gauges read from storage.
    metrics: MetricsScrape
    recovery: RecoveryService
    # The mail outbox: `outbox.depth()` feeds `gatehouse_mail_outbox_depth`.
    outbox: MailOutbox
    # The audit trail: `audit` searches and prunes it, `audit_recorder` is what every
    # service records through (`flush()` writes what it has queued).
    audit: AuditService
    audit_recorder: SqlAuditRecorder
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Load (or create) the signing keys; start the background tasks: watching for
        invalidations, checkpointing the WAL (SQLite), pruning ended sessions and dead
        account tokens, pruning the audit trail (unless AUDIT_RETENTION is 0), the mail
        outbox's worker, and culling devices (when DEVICE_CULL_INTERVAL is set). The
        audit recorder's writer starts with the first recorded event.

        A database that is down is not fatal here: the process starts, answers 503 on
        /readyz and on routes that need storage, and loads the keys on first use.
        """
        try:
            await self.keys.ensure_signing_key()
        except StorageUnavailableError:
            log.warning("database unavailable at start; signing keys will load on first use")
        self._background.append(asyncio.create_task(self.watcher.run()))
        self._background.append(asyncio.create_task(self.db.keep_checkpointed()))
        self._background.append(asyncio.create_task(self._keep_pruning()))
        if self.settings.audit_retention > timedelta(0):
            self._background.append(asyncio.create_task(self._keep_audit_pruned()))
        if self.settings.smtp_host is None:
            log.warning(
                "GATEHOUSE_SMTP_HOST is not set: mail is not sent but written to %s",
                self.outbox.transport.description,
            )
        self._background.append(asyncio.create_task(self.outbox.run()))
        if self.settings.device_cull_interval.total_seconds() > 0:
            self._background.append(asyncio.create_task(self._keep_culling()))

    async def _keep_pruning(self) -> None:
        await asyncio.sleep(random.uniform(*_PRUNE_FIRST_AFTER_SECONDS))  # noqa: S311
        while True:
            try:
                if deleted := await self.sessions.prune_ended():
                    log.info("pruned %d rows of sessions that ended long ago", deleted)
            except Exception:  # a background loop must outlive any one failure
                log.warning("pruning ended sessions failed; will retry", exc_info=True)
            try:
                if deleted := await self.recovery.prune():
                    log.info("pruned %d expired reset and verification tokens", deleted)
            except Exception:  # a background loop must outlive any one failure
                log.warning("pruning expired account tokens failed; will retry", exc_info=True)
            await asyncio.sleep(_PRUNE_INTERVAL_SECONDS)

    async def _keep_audit_pruned(self) -> None:
        """About hourly (first 1-2 minutes after start), delete audit events older than
        `AUDIT_RETENTION`, in batches; idempotent, so several workers may run it."""
        await asyncio.sleep(random.uniform(*_PRUNE_FIRST_AFTER_SECONDS))  # noqa: S311
        while True:
            try:
                if deleted := await self.audit.prune_expired():
                    log.info("pruned %d audit events past the retention", deleted)
            except Exception:  # a background loop must outlive any one failure
                log.warning("pruning old audit events failed; will retry", exc_info=True)
            await asyncio.sleep(_PRUNE_INTERVAL_SECONDS)

    async def _keep_culling(self) -> None:
        interval = self.settings.device_cull_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                if culled := await self.devices.cull(by=Actor.system()):
                    log.info("culled %d silent devices", culled)
            except Exception:  # a background loop must outlive any one failure
                log.warning("culling silent devices failed; will retry", exc_info=True)

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        await self.api_keys.close()
        await self.devices.close()
        await self.sessions.close()
        self.hasher.close()
        self.metrics.close()
        await self.guard.close()
        # Last before the database goes: the services above may have recorded on closing.
        await self.audit_recorder.close()
        await self.db.dispose()


def load_secret(settings: Settings) -> ServerSecret:
    """The server secret from the environment, or the generated file in DATA_DIR."""
    if settings.secret_key is not None:
        return ServerSecret(settings.secret_key.get_secret_value().encode())
    return ServerSecret.load_or_create(settings.data_dir / SECRET_FILE_NAME)


def _prepare_data_dir(settings: Settings) -> None:
    """Create DATA_DIR (0700) and the SQLite file (0600): it holds password hashes."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    database = settings.data_dir / DATABASE_FILE_NAME
    if not database.exists():
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))


def _mail_transport(settings: Settings) -> MailTransport:
    """SMTP when GATEHOUSE_SMTP_HOST is set, else .eml files in DATA_DIR/mail/."""
    if settings.smtp_host is None:
        return FileTransport(settings.data_dir / "mail")
    return SmtpTransport(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        timeout=settings.smtp_timeout.total_seconds(),
    )


def _outbox(settings: Settings, secret: ServerSecret, db: Database, clock: Clock) -> MailOutbox:
    return MailOutbox(
        repository=SqlOutboxRepository(db),
        transport=_mail_transport(settings),
        cipher=outbox_cipher(secret.derive("gatehouse mail outbox v1")),
        sender=settings.resolved_mail_from,
        clock=clock,
        # Longer than any one SMTP exchange can take (each step has the timeout).
        lease=max(timedelta(minutes=2), settings.smtp_timeout * 10),
        message_id_domain=urlsplit(settings.issuer).hostname or "gatehouse",
    )


def _limit_store(settings: Settings, clock: Clock) -> LimitStore:
    """Redis when GATEHOUSE_REDIS_URL is set (shared by every worker), else this process's."""
    if settings.redis_url is not None:
        return RedisLimitStore(
            settings.redis_url.get_secret_value(), prefix=settings.redis_key_prefix
        )
    return MemoryLimitStore(clock)


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    if settings.database_url is None:
        _prepare_data_dir(settings)
    secret = load_secret(settings)
    db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size)
    invalidations = InvalidationLog(db)
    users = SqlUserRepository(db, invalidations)
    hasher = PasswordHasher(
        settings.password_hashing,
        concurrency=settings.hash_concurrency,
        queue_max=settings.hash_queue_max,
    )
    guard = AbuseGuard(
        store=_limit_store(settings, clock), policy=LimitPolicy.from_settings(settings), clock=clock
    )
    audit = SqlAuditRecorder(db, clock=clock)
    outbox = _outbox(settings, secret, db, clock)
    recovery = RecoveryService(
        users=users,
        tokens=SqlAccountTokenRepository(db, invalidations),
        outbox=outbox,
        templates=MailTemplates(settings.mail_templates_dir),
        limits=guard,
        hasher=hasher,
        reset_digests=OpaqueTokens(secret.derive("gatehouse reset-token digest v1")),
        verify_digests=OpaqueTokens(secret.derive("gatehouse verify-token digest v1")),
        address_keys=OpaqueTokens(secret.derive("gatehouse mail address key v1")),
        audit=audit,
        clock=clock,
        site=settings.issuer,
        reset_url=settings.resolved_reset_url,
        verify_url=settings.resolved_verify_url,
        reset_ttl=settings.reset_token_ttl,
        verify_ttl=settings.verify_token_ttl,
    )
    accounts = AccountService(
        users=users,
        hasher=hasher,
        audit=audit,
        clock=clock,
        guard=guard,
        require_verified_email=settings.require_verified_email,
        verification=recovery if settings.verify_on_register else None,
    )
    keys = KeyService(
        keys=SqlSigningKeyRepository(db),
        encryption_key=secret.derive("gatehouse signing-key encryption v1"),
        clock=clock,
        retire_after=retire_after(
            settings.access_token_ttl, settings.token_leeway, settings.key_refresh_interval
        ),
        refresh_interval=settings.key_refresh_interval,
    )
    verifier = AccessTokenVerifier(
        keys=keys,
        issuer=settings.issuer,
        audience=settings.audience,
        leeway=settings.token_leeway.total_seconds(),
        clock=lambda: clock.now().timestamp(),
        cache_size=_VERIFIED_TOKEN_CACHE,
    )
    poll = settings.revocation_poll_interval
    cache = PrincipalCache(
        ttl_seconds=_PRINCIPAL_CACHE_TTL_SECONDS,
        # Without a successful poll for this long, the cache stands aside. Generous enough
        # that a busy event loop delaying one poll does not switch the cache off under load.
        fresh_seconds=max(poll.total_seconds() * 8, 2.0),
    )
    invalidations.subscribe(cache.evict_users)
    issuer = AccessTokenIssuer(
        keys=keys,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl=settings.access_token_ttl,
        clock=clock,
    )
    sessions = SessionService(
        sessions=SqlSessionRepository(db, invalidations),
        issuer=issuer,
        verifier=verifier,
        keys=keys,
        opaque=OpaqueTokens(secret.derive("gatehouse refresh-token digest v1")),
        csrf_key=secret.derive("gatehouse csrf token v1"),
        cache=cache,
        audit=audit,
        clock=clock,
        idle_ttl_seconds=settings.refresh_idle_ttl.total_seconds(),
        absolute_ttl_seconds=settings.refresh_absolute_ttl.total_seconds(),
        retention_seconds=settings.session_retention.total_seconds(),
    )
    api_keys = ApiKeyService(
        keys=SqlApiKeyRepository(db, invalidations),
        opaque=OpaqueTokens(secret.derive("gatehouse api-key digest v1")),
        cache=cache,
        issuer=issuer,
        audit=audit,
        clock=clock,
    )
    license_keys = OpaqueTokens(secret.derive("gatehouse license-key digest v1"))
    devices = DeviceService(
        devices=SqlDeviceRepository(db, invalidations),
        licenses=(license_repo := SqlLicenseRepository(db, invalidations)),
        fingerprints=OpaqueTokens(secret.derive("gatehouse device-fingerprint digest v1")),
        license_keys=license_keys,
        issuer=issuer,
        cache=cache,
        audit=audit,
        clock=clock,
    )
    return Services(
        settings=settings,
        clock=clock,
        db=db,
        hasher=hasher,
        guard=guard,
        accounts=accounts,
        admin=AdminService(users=users, accounts=accounts, audit=audit, clock=clock),
        keys=keys,
        sessions=sessions,
        api_keys=api_keys,
        devices=devices,
        licenses=LicenseService(
            licenses=license_repo, license_keys=license_keys, audit=audit, clock=clock
        ),
        authenticator=Authenticator(
            sessions=sessions, api_keys=api_keys, devices=devices, guard=guard
        ),
        verifier=verifier,
        watcher=InvalidationWatcher(feed=invalidations, cache=cache, clock=clock, interval=poll),
        metrics=MetricsScrape.from_environment(_state_gauges(clock, sessions, outbox)),
        recovery=recovery,
        outbox=outbox,
        audit=AuditService(
            events=SqlAuditRepository(db), clock=clock, retention=settings.audit_retention
        ),
        audit_recorder=audit,
    )


def _state_gauges(clock: Clock, sessions: SessionService, outbox: MailOutbox) -> StateGauges:
    """The gauges a scrape reads from the database (each at most every few seconds)."""
    gauges = StateGauges(clock)
    gauges.add(
        "gatehouse_active_sessions",
        "Sessions not revoked and not expired, over all users.",
        sessions.count_active,
    )
    gauges.add(
        "gatehouse_mail_outbox_depth",
        "Mails in the outbox not yet sent (waiting, or between tries).",
        outbox.depth,
    )
    return gauges
