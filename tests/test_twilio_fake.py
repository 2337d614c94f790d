"""The Twilio stand-in the SMS tests stand on (tests/twilio_fake.py) does what they assume: the
real twilio client, rebased onto it, sends, gets Twilio's errors as TwilioRestException and
never retries; segment counts follow GSM-7 / UCS-2; webhooks are signed as Twilio signs them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels.sms.sender import RebasingHttpClient
from tests.twilio_fake import (
    TwilioFake,
    inbound_sms_form,
    post_signed,
    send_status,
    sign,
    sms_segments,
    twilio_client,  # noqa: F401
    twilio_fake,  # noqa: F401
)

CUSTOMER = "+14155550123"
OUR_NUMBER = "+14155559999"
SID = re.compile(r"^SM[0-9a-f]{32}$")
GSM_161 = "x" * 161
CHINESE_70 = "您好" * 35
CHINESE_71 = CHINESE_70 + "啊"


async def send(client: Client, body: str = "hello", **options: Any) -> Any:
    return await client.messages.create_async(
        to=options.pop("to", CUSTOMER), from_=options.pop("from_", OUR_NUMBER), body=body, **options
    )


def assert_auth_deprecations(warned: pytest.WarningsRecorder) -> None:
    """twilio's own AsyncTwilioHttpClient on aiohttp 3.14: two DeprecationWarnings per request."""
    texts = sorted({str(w.message).split(";")[0] for w in warned})
    assert texts == [
        "BasicAuth is deprecated and will be removed in aiohttp 4.0",
        "The 'auth' parameter is deprecated and will be removed in v4",
    ]


# ------------------------------------------------------------------------------------- sending


async def test_the_real_client_sends_through_the_fake(
    twilio_fake: TwilioFake,  # noqa: F811
    twilio_client: Client,  # noqa: F811
) -> None:
    callback = "https://cc.example.com/v1/webhooks/twilio/status?m=42&note=a b&x=é"
    message = await send(twilio_client, "Your order shipped", status_callback=callback)

    assert SID.match(message.sid)
    assert message.status == "queued"
    assert message.num_segments == "1"  # a string, as Twilio sends it
    assert (message.to, message.from_, message.body) == (CUSTOMER, OUR_NUMBER, "Your order shipped")
    assert message.account_sid == twilio_fake.account_sid
    assert message.direction == "outbound-api"
    assert message.error_code is None and message.date_sent is None
    assert message.date_created is not None and message.date_created.tzinfo is not None

    [request] = await twilio_fake.wait_for(1)
    assert request.path == f"/2010-04-01/Accounts/{twilio_fake.account_sid}/Messages.json"
    assert request.auth_user == twilio_fake.account_sid
    assert request.form == {
        "To": CUSTOMER,
        "From": OUR_NUMBER,
        "Body": "Your order shipped",
        "StatusCallback": callback,  # its own query string arrives intact
    }
    assert request.sid == message.sid
    assert twilio_fake.message(message.sid)["status"] == "queued"


async def test_media_urls_go_as_repeated_fields(
    twilio_fake: TwilioFake,  # noqa: F811
    twilio_client: Client,  # noqa: F811
) -> None:
    urls = ["https://cdn.example.com/a.jpg", "https://cdn.example.com/b.png"]
    message = await send(twilio_client, "", media_url=urls, send_as_mms=True)
    assert message.sid.startswith("MM") and message.num_media == "2"
    [request] = twilio_fake.messages
    assert request.media_urls == urls
    assert request.form["SendAsMms"] == "true"
    assert "Body" in request.form  # an empty string is sent; only None / unset are dropped


async def test_a_messaging_service_send_is_accepted_without_a_sender_yet(
    twilio_fake: TwilioFake,  # noqa: F811
    twilio_client: Client,  # noqa: F811
) -> None:
    service = "MG" + "0" * 32
    message = await twilio_client.messages.create_async(
        to=CUSTOMER, messaging_service_sid=service, body="hello"
    )
    assert (message.status, message.from_, message.num_segments) == ("accepted", None, "0")
    assert message.messaging_service_sid == service
    assert "From" not in twilio_fake.messages[0].form


@pytest.mark.parametrize(
    ("body", "segments"),
    [("hello", "1"), (GSM_161, "2"), (CHINESE_70, "1"), (CHINESE_71, "2")],
    ids=["hello", "161-gsm", "70-chinese", "71-chinese"],
)
async def test_num_segments_as_twilio_counts_them(
    twilio_client: Client,  # noqa: F811
    body: str,
    segments: str,
) -> None:
    message = await send(twilio_client, body)
    assert message.num_segments == segments


SEGMENT_CASES = [
    pytest.param("", 1, id="empty"),
    pytest.param("a" * 160, 1, id="gsm-160"),
    pytest.param("a" * 306, 2, id="gsm-306"),
    pytest.param("a" * 307, 3, id="gsm-307"),
    pytest.param("€" * 80, 1, id="extension-80"),  # ESC + one septet: two each
    pytest.param("€" * 81, 2, id="extension-81"),
    pytest.param("a" * 152 + "€", 1, id="gsm-154-septets"),
    pytest.param("a" * 160 + "€" * 73, 2, id="gsm-306-septets-with-pairs"),
    pytest.param("a" * 152 + "€" + "a" * 7, 2, id="pair-at-the-part-border"),
    pytest.param("é" * 160, 1, id="e-acute-is-gsm"),
    pytest.param("ê" * 70, 1, id="e-circumflex-is-ucs2"),
    pytest.param("ê" * 71, 2, id="e-circumflex-71"),
    pytest.param("中" * 134, 2, id="chinese-134"),
    pytest.param("中" * 135, 3, id="chinese-135"),
    pytest.param("😀" * 35, 1, id="emoji-35"),  # 70 UTF-16 units
    pytest.param("😀" * 36, 2, id="emoji-36"),
    pytest.param("a" * 66 + "😀" + "a" * 4, 2, id="surrogates-at-the-part-border"),
    pytest.param("退订", 1, id="unsubscribe-chinese"),
]


@pytest.mark.parametrize(("body", "segments"), SEGMENT_CASES)
def test_sms_segments(body: str, segments: int) -> None:
    assert sms_segments(body) == segments


# -------------------------------------------------------------------------------------- errors


async def test_wrong_credentials_get_twilios_401(twilio_fake: TwilioFake) -> None:  # noqa: F811
    http = RebasingHttpClient(twilio_fake.url)
    try:
        client = Client(twilio_fake.account_sid, "not-the-token", http_client=http)
        with pytest.raises(TwilioRestException) as caught:
            await send(client)
    finally:
        await http.close()
    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert caught.value.msg == "Unable to create record: Authenticate"
    [request] = twilio_fake.sends
    assert request.status == 401 and request.auth_user is None
    assert twilio_fake.messages == []


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (21610, "Attempt to send to unsubscribed recipient"),
        (21211, "Invalid 'To' Phone Number"),
    ],
)
async def test_a_permanent_refusal_raises_with_twilios_code(
    twilio_fake: TwilioFake,  # noqa: F811
    twilio_client: Client,  # noqa: F811
    code: int,
    text: str,
) -> None:
    twilio_fake.reject_next(code=code)
    with pytest.raises(TwilioRestException) as caught:
        await send(twilio_client)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert caught.value.msg == f"Unable to create record: {text}"
    [refused] = twilio_fake.sends
    assert refused.answer == {
        "code": code,
        "message": text,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": 400,
    }
    assert twilio_fake.messages == []

    await send(twilio_client)  # only the scripted one is refused
    assert len(twilio_fake.messages) == 1


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500), (503, 20503)])
async def test_a_transient_error_is_raised_once_and_not_retried(
    twilio_fake: TwilioFake,  # noqa: F811
    twilio_client: Client,  # noqa: F811
    status: int,
    code: int,
) -> None:
    twilio_fake.fail_next(status=status)
    with pytest.raises(TwilioRestException) as caught:
        await send(twilio_client)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert [r.status for r in twilio_fake.sends] == [status]  # exactly one request
    assert twilio_fake.messages == []


async def test_a_non_json_error_page_gives_the_http_status_as_code(
    twilio_fake: TwilioFake,  # noqa: F811
    twilio_client: Client,  # noqa: F811
) -> None:
    twilio_fake.fail_next(status=502, body="<html>Bad Gateway</html>", content_type="text/html")
    with pytest.raises(TwilioRestException) as caught:
        await send(twilio_client)
    assert (caught.value.status, caught.value.code) == (502, 502)
    assert caught.value.msg == "Unable to create record"


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"from_": None}, 21603),
        ({"body": None}, 21602),
        ({"body": "a" * 1601}, 21617),
    ],
)
async def test_sends_twilio_cannot_take_are_refused_like_twilio(
    twilio_client: Client,  # noqa: F811
    options: dict[str, Any],
    code: int,
) -> None:
    fields: dict[str, Any] = {"to": CUSTOMER, "from_": OUR_NUMBER, "body": "hi", **options}
    with pytest.raises(TwilioRestException) as caught:
        await twilio_client.messages.create_async(**fields)
    assert (caught.value.status, caught.value.code) == (400, code)


async def test_twilios_own_retries_would_post_a_send_again(
    twilio_fake: TwilioFake,  # noqa: F811
) -> None:
    """Why max_retries stays off: aiohttp_retry re-POSTs on a 5xx, so a send that failed
    ambiguously would go out twice."""

    class RetryingClient(AsyncTwilioHttpClient):  # type: ignore[misc]
        async def request(self, method: str, url: str, **kwargs: Any) -> TwilioResponse:
            rebased = url.replace("https://api.twilio.com", twilio_fake.url)
            return await super().request(method, rebased, **kwargs)

    http = RetryingClient(max_retries=2)
    try:
        client = Client(twilio_fake.account_sid, twilio_fake.auth_token, http_client=http)
        twilio_fake.fail_next(status=503)
        with pytest.warns(DeprecationWarning) as warned:
            message = await send(client)
        assert_auth_deprecations(warned)
    finally:
        await http.close()
    assert [r.status for r in twilio_fake.sends] == [503, 201]
    assert message.sid == twilio_fake.messages[0].sid


# ------------------------------------------------------------------------- the rebasing client


async def test_rebase_rewrites_twilio_hosts_only() -> None:
    async with RebasingHttpClient("http://127.0.0.1:9/twilio/") as http:
        assert (
            http.rebase("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?a=1")
            == "http://127.0.0.1:9/twilio/2010-04-01/Accounts/AC1/Messages.json?a=1"
        )
        assert (
            http.rebase("https://messaging.twilio.com/v1/Services")
            == "http://127.0.0.1:9/twilio/v1/Services"
        )
        assert (
            http.rebase("https://api.dublin.ie1.twilio.com/2010-04-01/x.json")
            == "http://127.0.0.1:9/twilio/2010-04-01/x.json"
        )
        for other in (
            "https://eviltwilio.com/2010-04-01/x.json",
            "https://api.twilio.com.example.org/x",
            "http://api.twilio.com/x",
            "https://media.example.com/a.jpg",
        ):
            assert http.rebase(other) == other
    with pytest.raises(ValueError, match="not an http"):
        RebasingHttpClient("api.twilio.com")


async def test_an_edge_and_region_still_reach_the_fake(twilio_fake: TwilioFake) -> None:  # noqa: F811
    http = RebasingHttpClient(twilio_fake.url)
    try:
        client = Client(
            twilio_fake.account_sid,
            twilio_fake.auth_token,
            http_client=http,
            edge="dublin",
            region="ie1",
        )
        message = await send(client)
    finally:
        await http.close()
    assert message.sid == twilio_fake.messages[0].sid


class _SessionSpy:
    """Stands in for AsyncTwilioHttpClient.session and records what it is asked."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.calls: list[dict[str, Any]] = []

    async def request(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return await self.session.request(**kwargs)

    async def close(self) -> None:
        await self.session.close()


async def test_twilios_client_drops_its_timeout_and_warns_and_ours_does_neither(
    twilio_fake: TwilioFake,  # noqa: F811
) -> None:
    class NaiveClient(AsyncTwilioHttpClient):  # type: ignore[misc]
        async def request(self, method: str, url: str, **kwargs: Any) -> TwilioResponse:
            rebased = url.replace("https://api.twilio.com", twilio_fake.url)
            return await super().request(method, rebased, **kwargs)

    timeouts = []
    for http in (NaiveClient(timeout=2.5), RebasingHttpClient(twilio_fake.url, timeout=2.5)):
        spy = _SessionSpy(http.session)
        http.session = spy
        try:
            client = Client(twilio_fake.account_sid, twilio_fake.auth_token, http_client=http)
            if isinstance(http, RebasingHttpClient):
                await send(client)  # no warning: under filterwarnings=error it would raise
            else:
                with pytest.warns(DeprecationWarning) as warned:
                    await send(client)
                assert_auth_deprecations(warned)
        finally:
            await http.close()
        assert http.session.session.closed
        timeouts.append(spy.calls[0]["timeout"])
        assert spy.calls[0]["auth"] is None or not isinstance(http, RebasingHttpClient)
    assert timeouts == [None, 2.5]  # None: aiohttp's ClientTimeout(total=None), no limit at all


async def test_a_timeout_on_a_message_twilio_did_create(twilio_fake: TwilioFake) -> None:  # noqa: F811
    """The ambiguous failure: the client gives up (TimeoutError, not a TwilioRestException)
    while Twilio has the message. Only a retry that knows this may re-send."""
    twilio_fake.stall_next()
    http = RebasingHttpClient(twilio_fake.url, timeout=0.2)
    try:
        client = Client(twilio_fake.account_sid, twilio_fake.auth_token, http_client=http)
        with pytest.raises(TimeoutError):
            await send(client)
    finally:
        await http.close()
        twilio_fake.release()
    [created] = twilio_fake.messages
    assert twilio_fake.message(created.sid or "")["status"] == "queued"


async def test_the_session_is_closed_and_the_context_manager_closes_it(
    twilio_fake: TwilioFake,  # noqa: F811
) -> None:
    async with RebasingHttpClient(twilio_fake.url) as http:
        client = Client(twilio_fake.account_sid, twilio_fake.auth_token, http_client=http)
        await send(client)
        assert not http.session.closed
    assert http.session.closed


async def test_wait_for_wakes_on_a_send_and_reports_a_shortfall(
    twilio_fake: TwilioFake,  # noqa: F811
    twilio_client: Client,  # noqa: F811
) -> None:
    with pytest.raises(AssertionError, match="0 of 1 messages created"):
        await twilio_fake.wait_for(1, within=0.05)
    task = asyncio.create_task(send(twilio_client))
    [request] = await twilio_fake.wait_for(1, within=5)
    assert request.sid == (await task).sid
    twilio_fake.fail_next(status=429)
    failing = asyncio.create_task(send(twilio_client))
    sends = await twilio_fake.wait_for_sends(2, within=5)
    assert [s.status for s in sends] == [201, 429]
    with pytest.raises(TwilioRestException):
        await failing


async def test_fetch_follows_the_status_the_fake_was_moved_to(
    twilio_fake: TwilioFake,  # noqa: F811
    twilio_client: Client,  # noqa: F811
    receiver: Receiver,
) -> None:
    message = await send(twilio_client)
    await twilio_fake.send_status(receiver.url, message.sid, "undelivered", error_code=30003)
    fetched = await twilio_client.messages(message.sid).fetch_async()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)
    assert fetched.date_sent is not None
    with pytest.raises(TwilioRestException) as caught:
        await twilio_client.messages("SM" + "0" * 32).fetch_async()
    assert (caught.value.status, caught.value.code) == (404, 20404)


# ------------------------------------------------------------------------------------ webhooks


class Receiver:
    """Our side of a webhook: an aiohttp app that checks the signature as the product must."""

    def __init__(self, server: TestServer, auth_token: str) -> None:
        self.server = server
        self.auth_token = auth_token
        self.received: list[tuple[dict[str, str], str | None, bool]] = []

    @property
    def url(self) -> str:
        return str(self.server.make_url("/v1/webhooks/twilio/status"))

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        signature = request.headers.get("X-Twilio-Signature")
        public = request.headers.get("X-Public-Url", str(request.url))
        valid = RequestValidator(self.auth_token).validate(public, form, signature or "")
        self.received.append((form, signature, valid))
        return web.Response(status=204 if valid else 403)


@pytest.fixture
async def receiver(
    twilio_fake: TwilioFake,  # noqa: F811
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> Receiver:
    app = web.Application()
    holder: list[Receiver] = []

    async def handle(request: web.Request) -> web.Response:
        return await holder[0].handle(request)

    app.router.add_post("/{tail:.*}", handle)
    holder.append(Receiver(await aiohttp_server(app), twilio_fake.auth_token))
    return holder[0]


async def test_a_status_callback_is_twilios_form_correctly_signed(
    twilio_fake: TwilioFake,  # noqa: F811
    twilio_client: Client,  # noqa: F811
    receiver: Receiver,
) -> None:
    message = await send(twilio_client)
    answer = await twilio_fake.send_status(receiver.url, message.sid, "delivered")
    assert answer.status == 204
    await twilio_fake.send_status(receiver.url, message.sid, "failed", error_code=30007)
    (delivered, signature, valid), (failed, _, failed_valid) = receiver.received
    assert (
        valid
        and failed_valid
        and signature == sign(receiver.url, delivered, twilio_fake.auth_token)
    )
    assert delivered == {
        "ApiVersion": "2010-04-01",
        "AccountSid": twilio_fake.account_sid,
        "MessageSid": message.sid,
        "SmsSid": message.sid,
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "From": OUR_NUMBER,
        "To": CUSTOMER,
    }
    assert (failed["MessageStatus"], failed["ErrorCode"]) == ("failed", "30007")


async def test_a_callback_signed_over_the_public_url_posted_elsewhere(
    twilio_fake: TwilioFake,  # noqa: F811
    receiver: Receiver,
) -> None:
    """Behind a proxy: Twilio signs the public URL (query string included) while the app sees
    another one; only a check against the public URL passes."""
    public = "https://cc.example.com/v1/webhooks/twilio/status?m=42"
    sid = "SM" + "1" * 32
    common: dict[str, Any] = {
        "account_sid": twilio_fake.account_sid,
        "auth_token": twilio_fake.auth_token,
        "post_to": receiver.url,
    }
    answer = await send_status(public, sid, "sent", **common)
    assert answer.status == 403  # checked against the URL the app saw: refused
    await post_signed(
        public,
        {"MessageSid": sid, "MessageStatus": "sent"},
        auth_token=twilio_fake.auth_token,
        post_to=receiver.url,
        headers={"X-Public-Url": public},
    )
    await post_signed(
        public.replace("m=42", "m=43"),
        {"MessageSid": sid, "MessageStatus": "sent"},
        auth_token=twilio_fake.auth_token,
        post_to=receiver.url,
        headers={"X-Public-Url": public},
    )
    await send_status(public, sid, "sent", signature="", **common)
    assert [(valid, signature is None) for _, signature, valid in receiver.received] == [
        (False, False),
        (True, False),
        (False, False),  # the query string is part of what is signed
        (False, True),  # signature="" sends no header at all
    ]


def test_a_signed_inbound_sms_validates_and_a_tampered_one_does_not() -> None:
    token = "inbound-token"
    account = "AC" + "2" * 32
    url = "https://cc.example.com/v1/webhooks/twilio/sms"
    form = inbound_sms_form(
        from_="+8613800138000",
        to=OUR_NUMBER,
        body="退订",
        account_sid=account,
        media=[("https://api.twilio.com/2010-04-01/Accounts/x/Media/ME1", "image/jpeg")],
        messaging_service_sid="MG" + "3" * 32,
        opt_out_type="STOP",
    )
    signature = sign(url, form, token)
    validator = RequestValidator(token)
    assert validator.validate(url, form, signature)
    assert validator.validate("https://cc.example.com:443/v1/webhooks/twilio/sms", form, signature)
    assert not validator.validate(url, form | {"Body": "START"}, signature)
    assert not validator.validate(url, form | {"Extra": "1"}, signature)
    assert not validator.validate(url + "?x=1", form, signature)
    assert not validator.validate("http://cc.example.com/v1/webhooks/twilio/sms", form, signature)
    assert not RequestValidator("another-token").validate(url, form, signature)

    assert re.fullmatch(r"MM[0-9a-f]{32}", form["MessageSid"])
    assert form["MessageSid"] == form["SmsSid"] == form["SmsMessageSid"]
    assert (form["NumMedia"], form["MediaContentType0"]) == ("1", "image/jpeg")
    assert "MediaUrl1" not in form
    assert (form["FromCountry"], form["ToCountry"]) == ("CN", "US")
    assert (form["NumSegments"], form["SmsStatus"], form["OptOutType"]) == ("1", "received", "STOP")
    assert form["AccountSid"] == account and form["ApiVersion"] == "2010-04-01"

    plain = inbound_sms_form(
        from_=CUSTOMER, to=OUR_NUMBER, body=CHINESE_71, account_sid=account, message_sid="SMx"
    )
    assert (plain["MessageSid"], plain["NumMedia"], plain["NumSegments"]) == ("SMx", "0", "2")
    assert "MessagingServiceSid" not in plain and "OptOutType" not in plain


async def test_an_inbound_sms_posted_to_the_app_is_accepted_signed_and_refused_forged(
    twilio_fake: TwilioFake,  # noqa: F811
    receiver: Receiver,
) -> None:
    form = inbound_sms_form(
        from_=CUSTOMER, to=OUR_NUMBER, body="hello", account_sid=twilio_fake.account_sid
    )
    good = await post_signed(receiver.url, form, auth_token=twilio_fake.auth_token)
    forged = await post_signed(receiver.url, form, auth_token="guessed")
    assert (good.status, forged.status) == (204, 403)
    assert receiver.received[0][0] == form
