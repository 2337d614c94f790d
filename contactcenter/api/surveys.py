"""/v1/care/survey/{token}: the satisfaction survey of a follow-up visit, for the customer's
browser (no login: the signed token is the key).

GET shows a small page in the customer's language (en or zh-CN) with the scores 1-5 and a
comment box; the form POSTs (application/x-www-form-urlencoded: score, comment of at most
2000 characters) to the same URL and a thank-you page answers. These are pages, not the JSON
API: a refusal is a page too, with its status and the machine-readable code in
<body data-code="...">: invalid_link 400, survey_not_found 404, already_answered 409,
link_expired 410, unsupported_media_type 415, invalid_score or comment_too_long 422 (the
form again, the comment kept). Every value shown is escaped, and the headers forbid scripts,
framing, caching and referrers.
"""

from __future__ import annotations

import logging
from html import escape

from aiohttp import web
from pydantic import BaseModel, Field

from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Answer, Media, documented
from contactcenter.domain.errors import Conflict, DomainError, Invalid, NotFound
from contactcenter.services import satisfaction
from contactcenter.services.satisfaction import Survey
from contactcenter.services.surveys import SURVEY_PATH, InvalidLink, SurveyExpired

logger = logging.getLogger(__name__)

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

STATUS_BY_REFUSAL: dict[type[DomainError], int] = {
    InvalidLink: 400,
    NotFound: 404,
    Conflict: 409,
    SurveyExpired: 410,
    Invalid: 422,
}

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "How did we do?",
        "hello": "Hello {name},",
        "hello_anonymous": "Hello,",
        "question": "How satisfied are you with the help we gave you?",
        "score_1": "Very dissatisfied",
        "score_2": "Dissatisfied",
        "score_3": "Neutral",
        "score_4": "Satisfied",
        "score_5": "Very satisfied",
        "comment": "Anything you would like to tell us? (optional)",
        "send": "Send",
        "thanks": "Thank you for your answer!",
        "recovery": "We are sorry we let you down. A supervisor will contact you shortly.",
        "invalid_link": "This link is not valid. Please open the link from our message again.",
        "survey_not_found": "This survey could not be found.",
        "already_answered": "You have already answered this survey. Thank you!",
        "link_expired": "This survey has closed. Thank you all the same!",
        "invalid_score": "Please choose a score from 1 to 5.",
        "comment_too_long": "The comment can be at most 2000 characters long.",
        "unsupported_media_type": "The answer could not be read. Please send the form again.",
        "bad_request": "The answer could not be read. Please send the form again.",
    },
    "zh-CN": {
        "title": "满意度调查",
        "hello": "{name},您好!",
        "hello_anonymous": "您好!",
        "question": "您对我们为您提供的服务满意吗?",
        "score_1": "非常不满意",
        "score_2": "不满意",
        "score_3": "一般",
        "score_4": "满意",
        "score_5": "非常满意",
        "comment": "还有什么想告诉我们的吗?(选填)",
        "send": "提交",
        "thanks": "感谢您的评价!",
        "recovery": "很抱歉让您失望了,我们的主管会尽快与您联系。",
        "invalid_link": "此链接无效,请重新打开我们消息中的链接。",
        "survey_not_found": "找不到此调查。",
        "already_answered": "您已经完成了此调查,谢谢!",
        "link_expired": "此调查已结束,仍然感谢您!",
        "invalid_score": "请选择 1 到 5 分。",
        "comment_too_long": "评论最多 2000 个字符。",
        "unsupported_media_type": "无法读取您的回答,请重新提交。",
        "bad_request": "无法读取您的回答,请重新提交。",
    },
}

STYLE = """
body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;
color:#222;line-height:1.5}
fieldset{border:0;padding:0;margin:1rem 0}
label.score{display:block;padding:.4rem .6rem;margin:.3rem 0;border:1px solid #ccc;
border-radius:.4rem}
textarea{width:100%;min-height:6rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1.5rem;font-size:1rem}
p.error{color:#a00}
"""


class SurveyAnswerForm(BaseModel):
    """Documentation only: the page's form, read by hand (_read_form)."""

    score: int = Field(ge=1, le=5, description="1 (very dissatisfied) to 5 (very satisfied)")
    comment: str = Field(
        "",
        max_length=satisfaction.MAX_COMMENT,
        description="optional; control characters are dropped",
    )


TOKEN = {"token": {"type": "string", "description": "the signed token of the survey link"}}


def _html(what: str) -> Media:
    return Media("text/html", {"type": "string"}, what)


# the refusal pages: <body data-code="..."> carries the code
REFUSED: dict[int | str, Answer] = {
    400: _html("invalid_link, or bad_request (a form that could not be read)"),
    404: _html("survey_not_found"),
    409: _html("already_answered"),
    410: _html("link_expired"),
}


def _browser_locale(request: web.Request) -> str:
    """Before we know whose link it is: the browser's first choice of our two languages."""
    for part in request.headers.get("Accept-Language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "en"


def _page(locale: str, code: str, body: str, status: int) -> web.Response:
    texts = TEXTS[locale]
    html = (
        f'<!DOCTYPE html><html lang="{escape(locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(texts['title'])}</title><style>{STYLE}</style></head>"
        f'<body data-code="{escape(code)}"><h1>{escape(texts["title"])}</h1>{body}</body></html>'
    )
    return web.Response(
        text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
    )


def _message_page(locale: str, code: str, status: int, *extra: str) -> web.Response:
    texts = TEXTS[locale]
    paragraphs = "".join(f"<p>{escape(texts[key])}</p>" for key in (code, *extra))
    return _page(locale, code, paragraphs, status)


def _refusal_page(locale: str, refusal: DomainError) -> web.Response:
    status = next(
        (STATUS_BY_REFUSAL[cls] for cls in type(refusal).__mro__ if cls in STATUS_BY_REFUSAL),
        400,
    )
    code = refusal.code if refusal.code in TEXTS[locale] else "bad_request"
    return _message_page(locale, code, status)


def _form_page(
    request: web.Request, survey: Survey, *, error: str | None = None, comment: str = ""
) -> web.Response:
    texts = TEXTS[survey.locale]
    hello = texts["hello"].format(name=survey.name) if survey.name else texts["hello_anonymous"]
    choices = "".join(
        f'<label class="score"><input type="radio" name="score" value="{n}" required> '
        f"{n} - {escape(texts[f'score_{n}'])}</label>"
        for n in satisfaction.SCORES
    )
    warning = f'<p class="error" role="alert">{escape(texts[error])}</p>' if error else ""
    body = (
        f"<p>{escape(hello)}</p><p>{escape(texts['question'])}</p>{warning}"
        f'<form method="post" action="{escape(request.path)}">'
        f"<fieldset>{choices}</fieldset>"
        f'<p><label for="comment">{escape(texts["comment"])}</label></p>'
        f'<textarea id="comment" name="comment" maxlength="{satisfaction.MAX_COMMENT}">'
        f"{escape(comment)}</textarea>"
        f'<button type="submit">{escape(texts["send"])}</button></form>'
    )
    return _page(survey.locale, error or "survey", body, 422 if error else 200)


async def _open(request: web.Request) -> Survey | web.Response:
    """The survey of the link, or the page refusing it."""
    conns = request.app[CONNS]
    try:
        return await satisfaction.open_survey(conns, request.match_info["token"])
    except DomainError as refused:
        logger.info("survey link refused", extra={"code": refused.code})
        return _refusal_page(_browser_locale(request), refused)


@documented(
    "The survey page of a follow-up",
    access="public",
    path=TOKEN,
    responses={200: _html("the form: scores 1-5 and a comment box"), **REFUSED},
)
async def show_survey(request: web.Request) -> web.Response:
    """The HTML page of the survey link, in the customer's language; a link that takes no
    answer gets a page saying why."""
    survey = await _open(request)
    if isinstance(survey, web.Response):
        return survey
    if survey.refusal is not None:
        return _refusal_page(survey.locale, survey.refusal)
    return _form_page(request, survey)


async def _read_form(request: web.Request, survey: Survey) -> dict[str, str] | web.Response:
    if request.content_type != "application/x-www-form-urlencoded":
        return _message_page(survey.locale, "unsupported_media_type", 415)
    try:
        posted = await request.post()
    except (ValueError, LookupError, web.HTTPRequestEntityTooLarge):
        return _message_page(survey.locale, "bad_request", 400)
    return {k: v for k, v in posted.items() if isinstance(v, str)}


@documented(
    "Answer the survey (the page's form)",
    access="public",
    path=TOKEN,
    body=Media("application/x-www-form-urlencoded", SurveyAnswerForm),
    responses={
        200: _html("thanks (and, after a low score, that a supervisor will be in touch)"),
        **REFUSED,
        415: _html("unsupported_media_type: the form was not urlencoded"),
        422: _html("invalid_score or comment_too_long: the form again, the comment kept"),
    },
)
async def answer_survey(request: web.Request) -> web.Response:
    """Record the score and comment the page's form posts, and answer a thank-you page."""
    survey = await _open(request)
    if isinstance(survey, web.Response):
        return survey
    if survey.refusal is not None:
        return _refusal_page(survey.locale, survey.refusal)
    form = await _read_form(request, survey)
    if isinstance(form, web.Response):
        return form
    raw_comment = form.get("comment", "")
    raw_score = form.get("score", "").strip()
    if raw_score not in {str(n) for n in satisfaction.SCORES}:
        return _form_page(request, survey, error="invalid_score", comment=raw_comment)
    try:
        comment = satisfaction.clean_comment(raw_comment)
    except Invalid as refused:
        return _form_page(request, survey, error=refused.code, comment=raw_comment)
    conns = request.app[CONNS]
    survey, outcome = await satisfaction.answer_survey(conns, survey, int(raw_score), comment)
    if outcome is None:
        assert survey.refusal is not None
        return _refusal_page(survey.locale, survey.refusal)
    extra = ("recovery",) if outcome.recovery is not None else ()
    return _message_page(survey.locale, "thanks", 200, *extra)


def setup_routes(app: web.Application) -> None:
    app.router.add_get(SURVEY_PATH + "{token}", show_survey)
    app.router.add_post(SURVEY_PATH + "{token}", answer_survey)
