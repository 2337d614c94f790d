"""Templates, purely: rendering in the sandbox (missing values render as nothing, HTML values
escaped), what check_source refuses at save with the field and line, the locale fallback of
pick(), the salutations of care's placeholder values, and how locales are normalised."""

from __future__ import annotations

import pytest

from contactcenter.domain.care import placeholder_values
from contactcenter.domain.errors import Invalid
from contactcenter.domain.templates import (
    MAX_TEMPLATE_CHARS,
    Purpose,
    RenderFailed,
    Template,
    check_source,
    pick,
    render,
)
from contactcenter.services.templates import normalise_locale


def email(body_text: str, *, subject: str | None = None, body_html: str | None = None) -> Template:
    return Template(
        purpose=Purpose.BIRTHDAY,
        channel="email",
        locale="en",
        body_text=body_text,
        subject=subject,
        body_html=body_html,
    )


# --- rendering -------------------------------------------------------------------------------


def test_a_placeholder_without_a_value_renders_as_nothing() -> None:
    template = email(
        "Hi {{ name }}{{ company }}! {{ agent }}helped.", subject="For {{ name }} {{ company }}"
    )
    rendered = render(template, {"name": "Ann"})
    assert rendered.text == "Hi Ann! helped."
    # the subject is one line with its spaces collapsed, whatever a missing value leaves
    assert rendered.subject == "For Ann"
    assert rendered.html is None
    assert render(template, {}).text == "Hi ! helped."


def test_values_are_escaped_in_html_and_left_alone_in_text() -> None:
    name = "<script>alert('x')</script> & Co"
    template = email("Dear {{ name }}", body_html="<p>Dear <b>{{ name }}</b></p>")
    rendered = render(template, {"name": name})
    assert rendered.html == (
        "<p>Dear <b>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co</b></p>"
    )
    assert "<script>" not in (rendered.html or "")
    assert rendered.text == f"Dear {name}"


def test_conditions_and_string_filters_are_there_for_a_kinder_text() -> None:
    source = (
        "{% if name %}{{ salutation }}{% else %}Hello there{% endif %}, "
        "{{ agent | default('our team', true) | title }}{{ '!' if survey_link else '.' }}"
    )
    check_source(source, "body_text")
    assert render(email(source), {"name": "Ann", "salutation": "Dear Ann"}).text == (
        "Dear Ann, Our Team."
    )
    assert render(email(source), {"agent": "li lei", "survey_link": "x"}).text == (
        "Hello there, Li Lei!"
    )


def test_a_template_that_fails_when_rendered_says_so_with_render_failed() -> None:
    # only one stored before the checks could: a text compared with a number, an attribute
    with pytest.raises(RenderFailed):
        render(email("{% if name < 3 %}x{% endif %}"), {"name": "Ann"})
    with pytest.raises(RenderFailed):
        render(email("{{ name.x.y }}"), {})


def test_a_rendered_text_is_bounded() -> None:
    long_name = "n" * 60_000
    rendered = render(email("{{ name }}", subject="{{ name }}"), {"name": long_name})
    assert len(rendered.text) == 50_000
    assert rendered.subject is not None and len(rendered.subject) == 300


# --- what is refused at save -------------------------------------------------------------------


def test_the_seeded_kind_of_template_is_accepted_as_it_is() -> None:
    source = (
        '<p>{{ salutation }},</p><p><a href="{{ survey_link }}">{{ survey_link }}</a></p>'
        "{# a note for admins #}{% raw %}{{ shown as is }}{% endraw %}"
    )
    assert check_source(source, "body_html") == source


@pytest.mark.parametrize(
    ("source", "line", "says"),
    [
        # the sandbox's way in to Python's objects
        ("{{ ''.__class__ }}", 1, "attributes"),
        ("Hello\n{{ name.__class__.__mro__ }}", 2, "attributes"),
        ("{{ name[0] }}", 1, "attributes and items"),
        ("{{ lipsum() }}", 1, "calling a function"),
        ("{{ name.upper() }}", 1, ""),
        # unbounded time or memory
        (
            "a\nb\n{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
            3,
            "loop",
        ),
        ("{{ 'x' * 1000000000 }}", 1, "arithmetic"),
        ("{{ 10 ** 100000 }}", 1, "arithmetic"),
        ("{{ name | center(1000000000) }}", 1, "filter center"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", 1, "macro"),
        # raw HTML from a customer's name
        ("{{ name | safe }}", 1, "filter safe"),
        ("{% autoescape false %}{{ name }}{% endautoescape %}", 1, "autoescape"),
        # no other files, no state
        ("{% include 'other' %}", 1, "include"),
        ("{% set name = 'x' %}{{ name }}", 1, "{% set %}"),
        # a typo would render as nothing in every message
        ("Dear {{ nmae }}", 1, "not a placeholder"),
        ("{{ self }}", 1, "not a placeholder"),
        # does not parse
        ("line one\n{{ name ", 2, ""),
        ("{% if name %}no end", 1, ""),
        # fails when rendered (with every placeholder, or with none)
        ("x\n{% if name < 3 %}y{% endif %}", 2, "not supported"),
    ],
)
def test_what_a_template_may_not_do_is_refused_with_the_field_and_line(
    source: str, line: int, says: str
) -> None:
    with pytest.raises(Invalid) as refused:
        check_source(source, "body_text")
    assert refused.value.code == "invalid_template"
    assert refused.value.details == {"field": "body_text", "line": line}
    assert says in refused.value.message


def test_a_template_nested_too_deeply_or_too_long_is_refused_not_crashed_on() -> None:
    for source in (
        "{% if name %}" * 100 + "x" + "{% endif %}" * 100,
        "{{ " + "(" * 5000 + "name" + ")" * 5000 + " }}",
        "x" * (MAX_TEMPLATE_CHARS + 1),
    ):
        with pytest.raises(Invalid) as refused:
            check_source(source, "body_html")
        assert refused.value.code == "invalid_template"
        assert refused.value.details["field"] == "body_html"


# --- which locale --------------------------------------------------------------------------------


def stored(locale: str, channel: str = "sms", purpose: Purpose = Purpose.BIRTHDAY) -> Template:
    return Template(purpose=purpose, channel=channel, locale=locale, body_text=locale)


def test_pick_finds_the_locale_then_the_language_then_the_default() -> None:
    templates = [stored("en"), stored("zh-CN"), stored("en", channel="email")]
    assert pick(templates, Purpose.BIRTHDAY, "sms", "zh-CN", "en") == templates[1]
    assert pick(templates, Purpose.BIRTHDAY, "sms", "zh-cn", "en") == templates[1]
    # the same language in another region
    assert pick(templates, Purpose.BIRTHDAY, "sms", "zh-TW", "en") == templates[1]
    assert pick(templates, Purpose.BIRTHDAY, "sms", "en-GB", "zh-CN") == templates[0]
    # another language: the default locale's
    assert pick(templates, Purpose.BIRTHDAY, "sms", "fr", "en") == templates[0]
    assert pick(templates, Purpose.BIRTHDAY, "sms", "fr", "zh-CN") == templates[1]
    # nothing for that purpose or channel
    assert pick(templates, Purpose.FOLLOW_UP, "sms", "en", "en") is None
    assert pick(templates, Purpose.BIRTHDAY, "web", "en", "en") is None
    assert pick([stored("zh-CN")], Purpose.BIRTHDAY, "sms", "fr", "en") is None


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("zh-cn", "zh-CN"),
        ("ZH_cn", "zh-CN"),
        (" zh-TW ", "zh-TW"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("yue", "yue"),
    ],
)
def test_a_locale_is_kept_as_language_lower_and_region_upper(raw: str, normalised: str) -> None:
    assert normalise_locale(raw) == normalised


@pytest.mark.parametrize(
    "raw", ["", "e", "english", "zh-", "zh-CN-", "zh-C", "zh CN", "1a", "中文"]
)
def test_what_is_not_a_language_tag_is_refused(raw: str) -> None:
    with pytest.raises(Invalid) as refused:
        normalise_locale(raw, "default_locale")
    assert refused.value.code == "invalid_locale"
    assert refused.value.details == {"field": "default_locale"}


# --- what care fills in ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "locale", "salutation"),
    [
        ("Ann  Lee", "en", "Dear Ann Lee"),
        (None, "en", "Hello"),
        ("王芳", "zh-CN", "尊敬的王芳"),
        ("", "zh-CN", "您好"),
        ("王芳", "zh-TW", "尊敬的王芳"),
        ("Ann", "fr", "Dear Ann"),
    ],
)
def test_the_salutation_follows_the_locale_and_whether_we_know_the_name(
    name: str | None, locale: str, salutation: str
) -> None:
    values = placeholder_values(name=name, locale=locale)
    rendered = render(email("{{ salutation }},"), values)
    assert rendered.text == f"{salutation},"
