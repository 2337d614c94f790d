"""Real mail servers for the e-mail channel's tests: pymap (IMAP) and aiosmtpd (SMTP).

Both listen on 127.0.0.1 and a free port and speak the real protocols over real sockets, so
the listener and the sender are tested exactly as they run against Dovecot, Gmail or Postfix.

IMAP: pymap 0.36, its in-memory `dict` backend, run as a subprocess (`ImapServer`).
What it does, found out against this version (tests/test_mailservers.py proves the parts the
channel relies on):

- CAPABILITY before login: `IMAP4rev1 LITERAL+ ID AUTH=PLAIN AUTH=LOGIN` (no STARTTLS with
  --no-tls); after login: `BINARY UIDPLUS MOVE CHILDREN APPENDLIMIT=1000000000 IDLE OBJECTID
  MULTIAPPEND`. No CONDSTORE/QRESYNC, no NAMESPACE, no SPECIAL-USE. aioimaplib 2.0: `IMAP4`
  has no capability() method; `client.protocol.capabilities` as filled from LOGIN's
  `[CAPABILITY ...]` holds junk ("[", "MULTIAPPEND]": the last one carries the bracket, so it
  would be missed); `await client.protocol.capability()` re-reads a clean set.
- IDLE: supported, and the dict backend pushes `* n EXISTS` (then `* n RECENT`) to an idling
  client about a millisecond after another connection's APPEND. pymap has no IDLE timeout and
  no inactivity timeout at all (`pymap/imap/__init__.py`, `idle()` waits for DONE for ever), so
  it never ends an IDLE on its own: the listener's re-IDLE before the server's timeout (RFC 2177:
  at most 29 minutes; some providers cut sooner) is exercised by pymap only in that a re-issued
  IDLE must go on working. (The maildir
  backend would poll its directory once a second during IDLE instead: up to 1 s of latency.)
- UIDPLUS: APPEND answers `OK [APPENDUID <uidvalidity> <uid>]`, so `ImapServer.append`
  returns the UID.
- UIDs in a new mailbox start at 101 (UIDNEXT 101), not 1: never assume UID 1.
- UIDVALIDITY is drawn per mailbox when it is created: (unix time mod 65535) << 16 plus 16
  random bits, e.g. 3897660983. It often exceeds 2**31 - 1 (for about half of every 18-hour
  cycle of the time part), so PostgreSQL must store it as bigint, never integer.
- `UID FETCH n:* (UID RFC822.SIZE BODY.PEEK[])` works, with the RFC 3501 meaning of `*`: when n
  is above the highest UID, `n:*` is `highest:n`, so the last message comes back again (a
  mailbox with UIDs 101-102 answers `UID FETCH 103:*` with UID 102). The listener must drop
  returned UIDs <= the last one it took. On an empty mailbox `UID FETCH n:*` answers OK with
  no data.
- Pending changes arrive as untagged responses before the next command's answer, including
  `* n FETCH (FLAGS (\\Recent))` with no UID and no body for each new message: a FETCH parser
  must skip FETCH data without BODY[].
- Stopping the server (SIGTERM) sends `* BYE [UNAVAILABLE] Server has closed the connection.`
  to every client, an idling one included, then closes the sockets. aioimaplib hands that BYE
  to `wait_server_push()` and never completes the pending IDLE command: the listener has to
  treat a BYE push (or conn_lost_cb) as a dropped connection.
- Five consecutive BAD commands end the connection (pymap's bad_command_limit).

UIDVALIDITY changes (`ImapServer.restart`): the dict backend keeps everything in memory, so a
restart gives every mailbox a new UIDVALIDITY and, as UIDs start at 101 again, the same UIDs
for other messages. `restart(keep_mail=True)` (the default) copies all folders first and appends
the mails again in their order, with their flags and internal dates, after the restart: "the
UIDVALIDITY changed, the old mails are still there (under reused UIDs)". `keep_mail=False`
gives the empty-mailbox variant, to which a test appends what it likes. The two random halves
could repeat in the same second, so restart() starts again until every folder's UIDVALIDITY
differs; it returns INBOX's new value. Clients are disconnected (BYE) during a restart and the
port stays the same. Without a restart, RENAME INBOX and moving the mails back would also give
INBOX a new UIDVALIDITY (pymap allows it: the mails move, a new empty INBOX appears), but what a
connected client is told was not checked; restart is the realistic case (a server migrated or
its index rebuilt). Dovecot is not needed for any of this.

SMTP: aiosmtpd's SMTP protocol served by `loop.create_server` on the test's own event loop
(`SmtpServer`), so there is no thread and recorded mail is plain data on the test's loop. It
records every accepted mail, offers AUTH PLAIN and LOGIN without TLS for one fixed login
(optional unless `require_auth` is set), and fails scripted transactions: `fail_next` answers
MAIL, RCPT or DATA with a given code, `drop_next` closes the connection there without a word.
It answers only while the test's loop runs: a test must not block the loop (a synchronous
subprocess.run of something that sends mail would hang until the client's timeout). aiosmtpd
itself logs "Session.login_data is deprecated" (a log line, not a warning) on every AUTH.

Fixtures (function scope; a pymap start takes ~0.4 s, so every test gets a fresh server rather
than sharing one whose UIDs and UIDVALIDITY would leak between tests):
`imap_server` -> a started ImapServer; `smtp_server` -> a started SmtpServer.
Import them where they are used and mark the parameters that request them `# noqa: F811`
(ruff takes a parameter named like an imported fixture for a redefinition), or import them once
in conftest.py:

    from tests.mailservers import imap_server, smtp_server  # noqa: F401
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import socket
import sys
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any, Literal, cast

import aioimaplib
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

PYMAP = str(Path(sys.executable).with_name("pymap"))
LOCALHOST = "127.0.0.1"
START_TIMEOUT = 10.0

_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_LIST_LINE = re.compile(rb'^\([^)]*\) (?:NIL|"[^"]*") (.+)$')
_FETCH_HEAD = re.compile(rb"^\d+ FETCH \((.*)\{\d+\}$")
_FETCH_UID = re.compile(rb"UID (\d+)")
_FETCH_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_FETCH_DATE = re.compile(rb'INTERNALDATE ("[^"]+")')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------------------------------- IMAP


@dataclass(frozen=True)
class ImapMail:
    """One message as the IMAP server holds it."""

    uid: int
    flags: frozenset[str]
    internal_date: str  # quoted, as the server sent it: '"17-Jul-2024 10:00:00 +0000"'
    raw: bytes


class ImapError(Exception):
    pass


def _check(response: Any, what: str) -> Any:
    if response.result != "OK":
        raise ImapError(f"{what}: {response.result} {response.lines!r}")
    return response


async def _append(
    client: aioimaplib.IMAP4,
    raw: bytes,
    folder: str,
    flags: str | None = None,
    internal_date: str | None = None,
) -> int | None:
    mailbox = aioimaplib.quoted(folder)
    response = _check(
        await client.append(raw, mailbox=mailbox, flags=flags, date=internal_date), "APPEND"
    )
    for line in response.lines:
        found = _APPENDUID.search(line)
        if found:
            return int(found.group(2))
    return None


async def _list_folders(client: aioimaplib.IMAP4) -> list[str]:
    response = _check(await client.list('""', "*"), "LIST")
    names = []
    for line in response.lines:
        found = _LIST_LINE.match(line)
        if found:
            names.append(found.group(1).decode().strip('"'))
    return names


async def _uid_validity(client: aioimaplib.IMAP4, folder: str) -> int:
    response = _check(await client.status(aioimaplib.quoted(folder), "(UIDVALIDITY)"), "STATUS")
    for line in response.lines:
        found = _UIDVALIDITY.search(line)
        if found:
            return int(found.group(1))
    raise ImapError(f"no UIDVALIDITY in {response.lines!r}")


async def _fetch_all(client: aioimaplib.IMAP4, folder: str) -> list[ImapMail]:
    # aioimaplib only allows SEARCH and FETCH after its select() (not examine())
    _check(await client.select(aioimaplib.quoted(folder)), "SELECT")
    response = _check(
        await client.uid("fetch", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])"), "FETCH"
    )
    mails = []
    for head, body in itertools.pairwise(response.lines):
        found = _FETCH_HEAD.match(head) if isinstance(head, bytes) else None
        if found is None or not isinstance(body, bytearray):
            continue
        attributes = found.group(1)
        uid = _FETCH_UID.search(attributes)
        flags = _FETCH_FLAGS.search(attributes)
        date = _FETCH_DATE.search(attributes)
        assert uid and flags and date, head
        mails.append(
            ImapMail(
                uid=int(uid.group(1)),
                flags=frozenset(flags.group(1).decode().split()),
                internal_date=date.group(1).decode(),
                raw=bytes(body),
            )
        )
    return sorted(mails, key=lambda mail: mail.uid)


class ImapServer:
    """pymap (dict backend) as a subprocess with one user and an empty INBOX."""

    def __init__(
        self,
        *,
        user: str = "support@example.com",
        password: str = "imap-secret",
        host: str = LOCALHOST,
        port: int | None = None,
        log_path: Path | None = None,
        debug: bool = False,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.user = user
        self.password = password
        self.log_path = log_path  # pymap's output; with debug=True every line on the wire
        self.debug = debug
        self._fixed_port = port is not None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        for _attempt in range(3):
            await self._spawn()
            if await self._wait_ready():
                self._fixed_port = True  # a restart comes back where clients expect it
                return
            if self._fixed_port:
                break
            self.port = free_port()  # lost a race for the port: try another
        raise RuntimeError(f"pymap did not start on {self.host}:{self.port}: {self._log_tail()}")

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def crash(self) -> None:
        """SIGKILL: the sockets die without a BYE, as when a server or the network falls over."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def restart(self, *, keep_mail: bool = True) -> int:
        """Restart on the same port: every folder gets a new UIDVALIDITY (guaranteed different);
        with keep_mail the mails are appended again in order. Returns INBOX's UIDVALIDITY."""
        async with self.connect(folder=None) as client:
            folders = await _list_folders(client)
            before = {folder: await _uid_validity(client, folder) for folder in folders}
            saved = {f: await _fetch_all(client, f) for f in folders} if keep_mail else {}
        for _attempt in range(5):
            await self.stop()
            await self.start()
            async with self.connect(folder=None) as client:
                for folder in folders:
                    if folder != "INBOX":
                        _check(await client.create(aioimaplib.quoted(folder)), "CREATE")
                after = {folder: await _uid_validity(client, folder) for folder in folders}
                if any(after[folder] == before[folder] for folder in folders):
                    continue
                for folder, mails in saved.items():
                    for mail in mails:
                        flags = " ".join(sorted(mail.flags - {"\\Recent"}))
                        await _append(client, mail.raw, folder, f"({flags})", mail.internal_date)
                return after["INBOX"]
        raise RuntimeError("pymap kept a UIDVALIDITY over five restarts")

    @contextlib.asynccontextmanager
    async def connect(self, folder: str | None = "INBOX") -> AsyncIterator[aioimaplib.IMAP4]:
        """A logged-in aioimaplib client (with `folder` selected), logged out and closed after.
        A login costs pymap ~0.1 s (PBKDF2, 500,000 rounds): batch work in one connection."""
        client = aioimaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            await client.wait_hello_from_server()
            _check(await client.login(self.user, self.password), "LOGIN")
            if folder is not None:
                _check(await client.select(aioimaplib.quoted(folder)), "SELECT")
            yield client
            transport = client.protocol.transport
            if transport is not None and not transport.is_closing():
                await client.logout()
        finally:
            transport = client.protocol.transport
            if transport is not None:
                transport.close()

    async def append(
        self,
        raw: bytes,
        folder: str = "INBOX",
        *,
        flags: str | None = None,
        internal_date: str | None = None,
    ) -> int | None:
        """APPEND over a real connection; the UID from APPENDUID, or None without one.
        flags like "(\\Seen)"; internal_date like '"02-Jul-2024 10:00:00 +0000"'."""
        async with self.connect(folder=None) as client:
            return await _append(client, raw, folder, flags, internal_date)

    async def append_all(self, raws: list[bytes], folder: str = "INBOX") -> list[int | None]:
        """APPEND several mails in order over one connection (one login)."""
        async with self.connect(folder=None) as client:
            return [await _append(client, raw, folder) for raw in raws]

    async def create_folder(self, folder: str) -> None:
        async with self.connect(folder=None) as client:
            _check(await client.create(aioimaplib.quoted(folder)), "CREATE")

    async def folders(self) -> list[str]:
        async with self.connect(folder=None) as client:
            return await _list_folders(client)

    async def uid_validity(self, folder: str = "INBOX") -> int:
        async with self.connect(folder=None) as client:
            return await _uid_validity(client, folder)

    async def fetch_all(self, folder: str = "INBOX") -> list[ImapMail]:
        """Every message in `folder`, in UID order, without setting \\Seen."""
        async with self.connect(folder=None) as client:
            return await _fetch_all(client, folder)

    async def _spawn(self) -> None:
        await self.stop()
        args = [PYMAP]
        if self.debug:
            args.append("--debug")
        # services that extras would add (admin on port 50051, sieve, swim) stay off
        for service in ("admin", "managesieve", "swim"):
            args += ["--no-service", service]
        args += ["--host", self.host, "--port", str(self.port), "--no-tls", "dict"]
        args += ["--demo-user", self.user, "--demo-password", self.password]
        log = self._open_log()
        try:
            self._process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                # the greeting names the host; FQDN spares pymap a getfqdn() per connection
                env={**os.environ, "FQDN": "imap.test"},
            )
        finally:
            if log is not None:
                log.close()

    async def _wait_ready(self) -> bool:
        """Poll until pymap greets a connection; False when it exits first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        assert self._process is not None
        while self._process.returncode is None:
            with contextlib.suppress(OSError, TimeoutError):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    greeting = await asyncio.wait_for(reader.readline(), 2)
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
                if greeting.startswith(b"* OK"):
                    return True
            if loop.time() > deadline:
                await self.stop()
                raise RuntimeError(f"pymap not ready within {START_TIMEOUT}s: {self._log_tail()}")
            await asyncio.sleep(0.02)
        await self.stop()
        return False

    def _open_log(self) -> IO[bytes] | None:
        if self.log_path is None:
            return None
        return self.log_path.open("ab")

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log; pass log_path)"
        return self.log_path.read_text(errors="replace")[-2000:]


# ---------------------------------------------------------------------------------------- SMTP

Stage = Literal["MAIL", "RCPT", "DATA"]


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted transaction."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    auth_user: str | None  # the AUTH login used, None without AUTH


@dataclass(frozen=True)
class Rejection:
    """One transaction answered by a scripted failure (code None: the connection dropped)."""

    stage: Stage
    code: int | None
    text: str
    mail_from: str
    rcpt_tos: tuple[str, ...]


@dataclass(frozen=True)
class _Fault:
    stage: Stage
    code: int | None  # None: close the connection instead of answering
    text: str

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}"


class _Envelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.fault: _Fault | None = None  # taken at MAIL, for the whole transaction
        self.rcpt_seen: list[str] = []  # every RCPT TO, refused ones too


class _Protocol(SMTP):
    """aiosmtpd's SMTP, with an envelope that carries its scripted fault and connections known
    to the server so that stop() can close them."""

    def __init__(self, owner: SmtpServer, **options: Any) -> None:
        self._owner = owner
        super().__init__(_Handler(owner), **options)

    def _create_envelope(self) -> _Envelope:
        return _Envelope()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._owner._connections.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._owner._connections.discard(self)

    def abort(self) -> None:
        if self.transport is not None:
            cast(asyncio.Transport, self.transport).abort()

    @property
    def client_task(self) -> asyncio.Task[None] | None:
        return self._handler_coroutine


class _Handler:
    """aiosmtpd hooks: each MAIL starts a transaction and takes the next scripted fault."""

    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        assert isinstance(envelope, _Envelope)
        if self.owner.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        envelope.fault = self.owner._faults.popleft() if self.owner._faults else None
        return await self._maybe_fail(server, envelope, "MAIL") or "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        assert isinstance(envelope, _Envelope)
        envelope.rcpt_seen.append(address)
        failed = await self._maybe_fail(server, envelope, "RCPT")
        if failed:
            return failed
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, _Envelope)
        failed = await self._maybe_fail(server, envelope, "DATA")
        if failed:
            return failed
        raw = envelope.original_content or b""
        login: Any = session.auth_data  # what _authenticate returned: the login, as bytes
        auth_user = login.decode() if session.authenticated else None
        await self.owner._record(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=raw,
                message=message_from_bytes(raw, policy=policy.default),
                auth_user=auth_user,
            )
        )
        return "250 2.0.0 OK queued"

    async def _maybe_fail(self, server: SMTP, envelope: _Envelope, stage: Stage) -> str | None:
        fault = envelope.fault
        if fault is None or fault.stage != stage:
            return None
        if stage != "RCPT" or len(envelope.rcpt_seen) == 1:  # a transaction counts once
            self.owner.rejections.append(
                Rejection(
                    stage=stage,
                    code=fault.code,
                    text=fault.text,
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=tuple(envelope.rcpt_seen),
                )
            )
        if fault.code is None:
            assert isinstance(server, _Protocol)
            server.abort()
            # connection_lost() cancels this client's task, and with it this wait
            await asyncio.get_running_loop().create_future()
        return fault.reply


class SmtpServer:
    """aiosmtpd on the test's event loop. Records accepted mail in `messages`, scripted
    failures in `rejections`."""

    def __init__(
        self,
        *,
        user: str = "mailer@example.com",
        password: str = "smtp-secret",
        host: str = LOCALHOST,
        port: int = 0,
        auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"),
        require_auth: bool = False,
        data_size_limit: int = 64 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.require_auth = require_auth
        self.messages: list[ReceivedMail] = []
        self.rejections: list[Rejection] = []
        self._auth_mechanisms = auth_mechanisms
        self._data_size_limit = data_size_limit
        self._faults: deque[_Fault] = deque()
        self._received = asyncio.Condition()
        self._connections: set[_Protocol] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> SmtpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._new_connection, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        connections = list(self._connections)
        for connection in connections:
            connection.abort()
        await server.wait_closed()
        tasks = [c.client_task for c in connections if c.client_task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    def fail_next(
        self,
        n: int = 1,
        *,
        code: int = 451,
        message: str = "4.7.1 Try again later",
        at: Stage = "DATA",
    ) -> None:
        """Answer the next `n` transactions with `code` at MAIL, RCPT (every recipient) or
        DATA (after the content was sent). Later transactions succeed again."""
        self._faults.extend(_Fault(at, code, message) for _ in range(n))

    def drop_next(self, n: int = 1, *, at: Stage = "DATA") -> None:
        """Close the connection without a reply at that stage of the next `n` transactions."""
        self._faults.extend(_Fault(at, None, "connection dropped") for _ in range(n))

    async def wait_for(self, count: int = 1, *, within: float = 5.0) -> list[ReceivedMail]:
        """Wait until at least `count` mails were accepted; returns all of them."""
        try:
            async with asyncio.timeout(within), self._received:
                await self._received.wait_for(lambda: len(self.messages) >= count)
        except TimeoutError:
            raise AssertionError(
                f"{len(self.messages)} of {count} mails within {within}s"
                f" (rejections: {self.rejections!r})"
            ) from None
        return list(self.messages)

    async def _record(self, mail: ReceivedMail) -> None:
        async with self._received:
            self.messages.append(mail)
            self._received.notify_all()

    def _new_connection(self) -> _Protocol:
        excluded = {"PLAIN", "LOGIN"} - set(self._auth_mechanisms)
        return _Protocol(
            self,
            hostname="smtp.test",  # spares aiosmtpd a getfqdn() per connection
            data_size_limit=self._data_size_limit,
            enable_SMTPUTF8=True,
            auth_require_tls=False,
            auth_exclude_mechanism=excluded,
            authenticator=self._authenticate,
            loop=asyncio.get_running_loop(),
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == self.user.encode()
            and data.password == self.password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture
async def imap_server(tmp_path: Path) -> AsyncIterator[ImapServer]:
    """A fresh pymap for this test: one user, an empty INBOX, a UIDVALIDITY of its own."""
    server = ImapServer(log_path=tmp_path / "pymap.log")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    """A recording SMTP server; AUTH offered (server.user / server.password) but optional."""
    async with SmtpServer() as server:
        yield server
