"""IMAP intake for one mailbox: IDLE (or polling), fetch by UID above the checkpoint, take each
mail in order, and advance the checkpoint only with the mail it covers.

- The checkpoint (UIDVALIDITY, last UID) lives in PostgreSQL and moves in the transaction that
  stores the mail, so a listener killed at any point misses nothing and takes nothing twice.
- A new UIDVALIDITY means the server renumbered the folder: the recent window is fetched again
  and the mails already stored are recognised by their Message-ID.
- One listener per mailbox across every process: a lease in Redis, renewed while it works.
- A dropped connection reconnects with backoff; IDLE runs under our own watchdog (aioimaplib
  can hang past its timeout when the server drops the socket) and is re-issued before the
  server's 30-minute limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import uuid
from datetime import timedelta

import aioimaplib

from channels.email.intake import take
from contactcenter.conns import Conns
from contactcenter.domain.mailboxes import Mailbox, Security
from contactcenter.services import email_intake

logger = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
RECONNECT_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# a mailbox seen for the first time (or renumbered) is read this far back
FIRST_SYNC_DAYS = 7
FETCH_BATCH = 20
IMAP_TIMEOUT_SECONDS = 30.0

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_UID = re.compile(rb"UID (\d+)")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ImapError(Exception):
    """The server said no (a failed login, a missing folder): reconnect later."""


class LeaseLost(Exception):
    """Another listener holds this mailbox now."""


class Lease:
    """One holder per mailbox: SET NX with a expiry, renewed by its holder only."""

    _RENEW = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then "
        "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
    )
    _RELEASE = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then "
        "return redis.call('del', KEYS[1]) else return 0 end"
    )

    def __init__(self, conns: Conns, mailbox_id: int, owner: str) -> None:
        self._redis = conns.redis
        self.key = f"cc:mail-lease:{mailbox_id}"
        self.owner = owner
        self._ttl_ms = int(LEASE_SECONDS * 1000)

    async def acquire(self) -> bool:
        if await self._redis.set(self.key, self.owner, nx=True, px=self._ttl_ms):
            return True
        return await self.renew()

    async def renew(self) -> bool:
        renewed = await self._redis.eval(  # type: ignore[misc]
            self._RENEW, 1, self.key, self.owner, str(self._ttl_ms)
        )
        return bool(renewed)

    async def release(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.eval(self._RELEASE, 1, self.key, self.owner)  # type: ignore[misc]


class MailboxListener:
    def __init__(self, conns: Conns, mailbox: Mailbox, *, owner: str | None = None) -> None:
        assert mailbox.imap is not None
        self.conns = conns
        self.mailbox = mailbox
        self.lease = Lease(conns, mailbox.id, owner or uuid.uuid4().hex)
        # set whenever the listener has caught up and waits for new mail (tests wait on it)
        self.idle = asyncio.Event()

    async def run(self) -> None:
        """Listen until cancelled."""
        failures = 0
        try:
            while True:
                if not await self._try_lease():
                    await asyncio.sleep(LEASE_SECONDS / 3)
                    continue
                try:
                    await self._session_holding_lease()
                except (ImapError, LeaseLost, OSError, aioimaplib.Abort) as error:
                    delay = RECONNECT_BACKOFF[min(failures, len(RECONNECT_BACKOFF) - 1)]
                    failures += 1
                    self.idle.clear()
                    logger.warning(
                        "mailbox connection lost",
                        extra={
                            "mailbox_id": self.mailbox.id,
                            "error": f"{type(error).__name__}: {error}",
                            "retry_in": delay,
                        },
                    )
                    await asyncio.sleep(delay)
                else:
                    failures = 0
        finally:
            await self.lease.release()

    async def _try_lease(self) -> bool:
        try:
            return await self.lease.acquire()
        except (OSError, ConnectionError) as error:
            logger.warning("lease unavailable", extra={"error": type(error).__name__})
            return False

    async def _session_holding_lease(self) -> None:
        """Run one IMAP session while renewing the lease; lose the lease, end the session."""
        session = asyncio.create_task(self._session())
        holder = asyncio.create_task(self._hold_lease())
        try:
            done, _ = await asyncio.wait({session, holder}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (session, holder):
                task.cancel()
            await asyncio.gather(session, holder, return_exceptions=True)
        if session not in done:
            raise LeaseLost(self.lease.key)
        session.result()  # a session ends only by an error: raise it

    async def _hold_lease(self) -> None:
        """Returns only when the lease is lost."""
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                if not await self.lease.renew():
                    return
            except OSError:
                pass  # Redis away: keep going, the next renewal decides

    async def _session(self) -> None:
        client = await self._connect()
        try:
            uidvalidity = await self._select(client)
            idle_capable = await self._can_idle(client)
            while True:
                await self._take_new(client, uidvalidity)
                self.idle.set()
                if idle_capable:
                    await self._idle(client)
                else:
                    await asyncio.sleep(self.conns.settings.mail_poll_seconds)
                    await self._ok(await client.noop(), "NOOP")
                self.idle.clear()
        finally:
            await self._disconnect(client)

    async def _disconnect(self, client: aioimaplib.IMAP4) -> None:
        """Log out politely if the connection allows it, and close it in any case (also when
        cancelled in the middle of an IDLE, which must be ended before LOGOUT)."""
        with contextlib.suppress(Exception):
            if client.has_pending_idle():
                client.idle_done()
            await asyncio.wait_for(client.logout(), 1)
        transport = client.protocol.transport
        if transport is not None:
            transport.close()

    async def _connect(self) -> aioimaplib.IMAP4:
        imap = self.mailbox.imap
        assert imap is not None
        if imap.security is Security.STARTTLS:
            raise ImapError("IMAP STARTTLS is not supported yet: use ssl (port 993)")
        client: aioimaplib.IMAP4
        if imap.security is Security.SSL:
            client = aioimaplib.IMAP4_SSL(
                imap.host, imap.port, timeout=IMAP_TIMEOUT_SECONDS,
                ssl_context=ssl.create_default_context(),
            )  # fmt: skip
        else:
            client = aioimaplib.IMAP4(imap.host, imap.port, timeout=IMAP_TIMEOUT_SECONDS)
        await client.wait_hello_from_server()
        await self._ok(await client.login(imap.user or "", imap.password or ""), "LOGIN")
        return client

    async def _select(self, client: aioimaplib.IMAP4) -> int:
        response = await client.select(aioimaplib.quoted(self.mailbox.imap_folder))
        await self._ok(response, "SELECT")
        for line in response.lines:
            found = _UIDVALIDITY.search(bytes(line))
            if found:
                return int(found.group(1))
        raise ImapError("the server gave no UIDVALIDITY")

    async def _can_idle(self, client: aioimaplib.IMAP4) -> bool:
        # asked again after login: servers announce IDLE only then, and the list aioimaplib
        # gleans from the LOGIN answer is unreliable
        await client.protocol.capability()
        return bool(client.has_capability("IDLE"))

    async def _take_new(self, client: aioimaplib.IMAP4, uidvalidity: int) -> None:
        known_validity, last_uid = await email_intake.checkpoint(self.conns, self.mailbox.id)
        if known_validity != uidvalidity:
            if known_validity is not None:
                logger.warning(
                    "UIDVALIDITY changed; reading the recent window again",
                    extra={
                        "mailbox_id": self.mailbox.id,
                        "was": known_validity,
                        "now": uidvalidity,
                    },
                )
            uids = await self._search(client, self._since_window())
        else:
            uids = [
                uid for uid in await self._search(client, f"UID {last_uid + 1}:*") if uid > last_uid
            ]
        for start in range(0, len(uids), FETCH_BATCH):
            for uid, raw in await self._fetch(client, uids[start : start + FETCH_BATCH]):
                taken = await take(self.conns, self.mailbox, raw, uidvalidity=uidvalidity, uid=uid)
                logger.info(
                    "mail taken",
                    extra={
                        "mailbox_id": self.mailbox.id,
                        "uid": uid,
                        "message_id": taken.result.message_id if taken.result else None,
                        "quarantine_id": taken.quarantine_id,
                    },
                )
        if known_validity != uidvalidity and not uids:
            # nothing to take, but remember the folder's numbering from now on
            await email_intake.advance(self.conns, self.mailbox.id, uidvalidity, 0)

    def _since_window(self) -> str:
        day = (self.conns.clock() - timedelta(days=FIRST_SYNC_DAYS)).date()
        return f"SINCE {day.day:02d}-{_MONTHS[day.month - 1]}-{day.year}"

    async def _search(self, client: aioimaplib.IMAP4, criteria: str) -> list[int]:
        response = await client.uid_search(criteria, charset=None)
        await self._ok(response, "UID SEARCH")
        found = bytes(response.lines[0]).split() if response.lines else []
        return sorted(int(uid) for uid in found if uid.isdigit())

    async def _fetch(self, client: aioimaplib.IMAP4, uids: list[int]) -> list[tuple[int, bytes]]:
        """(UID, raw mail) in UID order; BODY.PEEK leaves the mails unread for people."""
        response = await client.uid("fetch", ",".join(map(str, uids)), "(UID BODY.PEEK[])")
        await self._ok(response, "UID FETCH")
        mails: list[tuple[int, bytes]] = []
        lines = response.lines
        for index, line in enumerate(lines[:-1]):
            if (
                isinstance(line, bytes)
                and b"FETCH" in line
                and isinstance(lines[index + 1], bytearray)
            ):
                found = _FETCH_UID.search(line)
                if found:
                    mails.append((int(found.group(1)), bytes(lines[index + 1])))
        mails.sort()
        return mails

    async def _idle(self, client: aioimaplib.IMAP4) -> None:
        """Wait for the server to say something changed, or for our IDLE period to end."""
        idle_seconds = self.conns.settings.mail_idle_seconds
        idle = await client.idle_start(timeout=idle_seconds)
        try:
            # our own watchdog: aioimaplib may wait past its timeout on a dropped socket
            push = await asyncio.wait_for(client.wait_server_push(), idle_seconds + 5)
        except TimeoutError:
            push = []
        if any(b"BYE" in bytes(line) for line in push if isinstance(line, bytes | bytearray)):
            # the server is going away: aioimaplib never completes the IDLE then
            idle.cancel()
            raise ImapError("the server said BYE")
        client.idle_done()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle, IMAP_TIMEOUT_SECONDS)

    async def _ok(self, response: aioimaplib.Response, command: str) -> None:
        if response.result != "OK":
            raise ImapError(f"{command} answered {response.result}")
