"""Routing rules, purely: a table of conditions, of outcomes, of refusals, and languages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contactcenter.domain.errors import Invalid
from contactcenter.domain.language import detect_language
from contactcenter.domain.rules import RoutingFacts, Rule, RulesOutcome, evaluate, parse_rule

AT = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
NOTHING = [{"type": "priority", "value": 1}]


def facts(**overrides: Any) -> RoutingFacts:
    values: dict[str, Any] = {
        "channel": "email",
        "mailbox_id": 1,
        "sms_number_id": None,
        "tier": 4,
        "contact_tags": (),
        "contact_fields": {},
        "subject": None,
        "text": "Hello there",
        "language": None,
        "at": AT,
        "open_calendars": {},
    }
    values.update(overrides)
    return RoutingFacts(**values)


def rule(
    conditions: list[dict[str, Any]],
    actions: list[dict[str, Any]] | None = None,
    *,
    id: int = 1,
    match: str = "all",
    position: int | None = None,
    enabled: bool = True,
) -> Rule:
    return parse_rule(
        id=id,
        name=f"rule {id}",
        position=id if position is None else position,
        enabled=enabled,
        conditions={"match": match, "conditions": conditions},
        actions=NOTHING if actions is None else actions,
    )


# (condition, facts, matches?) -- each is also checked negated with "not": true
CONDITIONS = [
    pytest.param({"type": "channel", "in": ["email", "sms"]}, {}, True, id="channel-in"),
    pytest.param({"type": "channel", "in": ["web"]}, {}, False, id="channel-out"),
    pytest.param({"type": "mailbox", "in": [1, 2]}, {}, True, id="mailbox-in"),
    pytest.param({"type": "mailbox", "in": [2]}, {}, False, id="mailbox-out"),
    pytest.param({"type": "mailbox", "in": [2]}, {"mailbox_id": None}, False, id="mailbox-none"),
    pytest.param(
        {"type": "sms_number", "in": [7]},
        {"channel": "sms", "mailbox_id": None, "sms_number_id": 7},
        True,
        id="sms-number-in",
    ),
    pytest.param({"type": "sms_number", "in": [7]}, {}, False, id="sms-number-none"),
    pytest.param({"type": "tier", "in": [1, 2]}, {"tier": 1}, True, id="tier-in"),
    pytest.param({"type": "tier", "in": [1, 2]}, {"tier": 3}, False, id="tier-out"),
    pytest.param(
        {"type": "contact_tag", "any": ["vip", "press"]},
        {"contact_tags": ("VIP",)},
        True,
        id="tag-any-caseless",
    ),
    pytest.param(
        {"type": "contact_tag", "any": ["vip"]}, {"contact_tags": ("new",)}, False, id="tag-any-out"
    ),
    pytest.param(
        {"type": "contact_tag", "all": ["vip", "Press"]},
        {"contact_tags": ("press", "vip", "x")},
        True,
        id="tag-all-in",
    ),
    pytest.param(
        {"type": "contact_tag", "all": ["vip", "press"]},
        {"contact_tags": ("vip",)},
        False,
        id="tag-all-partly",
    ),
    pytest.param(
        {"type": "contact_field", "field": "plan", "in": ["enterprise"]},
        {"contact_fields": {"plan": "Enterprise"}},
        True,
        id="field-caseless",
    ),
    pytest.param(
        {"type": "contact_field", "field": "plan", "in": ["enterprise"]},
        {"contact_fields": {"plan": "free"}},
        False,
        id="field-other",
    ),
    pytest.param(
        {"type": "contact_field", "field": "seats", "in": ["50", 100]},
        {"contact_fields": {"seats": 50}},
        True,
        id="field-number-as-text",
    ),
    pytest.param(
        {"type": "contact_field", "field": "seats", "in": [100]},
        {"contact_fields": {"seats": 100}},
        True,
        id="field-number",
    ),
    pytest.param(
        {"type": "contact_field", "field": "beta", "in": [True]},
        {"contact_fields": {"beta": True}},
        True,
        id="field-bool",
    ),
    pytest.param(
        {"type": "contact_field", "field": "plan", "in": ["x"]}, {}, False, id="field-missing"
    ),
    pytest.param(
        {"type": "contact_field", "field": "plan", "present": True},
        {"contact_fields": {"plan": ""}},
        True,
        id="field-present",
    ),
    pytest.param(
        {"type": "contact_field", "field": "plan", "present": True},
        {"contact_fields": {"plan": None}},
        False,
        id="field-null-is-absent",
    ),
    pytest.param(
        {"type": "contact_field", "field": "plan", "present": False}, {}, True, id="field-absent"
    ),
    pytest.param(
        {"type": "text", "keywords": ["refund"]}, {"text": "A REFUND!"}, True, id="kw-caseless"
    ),
    pytest.param(
        {"type": "text", "keywords": ["refund"]}, {"text": "prefund it"}, False, id="kw-boundary"
    ),
    pytest.param(
        {"type": "text", "keywords": ["refund"]},
        {"text": "it was refunded"},
        False,
        id="kw-whole-word",
    ),
    pytest.param(
        {"type": "text", "keywords": ["refund"]},
        {"text": "我要refund"},
        True,
        id="kw-next-to-chinese",
    ),
    pytest.param(
        {"type": "text", "keywords": ["refund"]},
        {"text": "ＲＥＦＵＮＤ please"},
        True,
        id="kw-full-width-text",
    ),
    pytest.param(
        {"type": "text", "keywords": ["ｒｅｆｕｎｄ"]},
        {"text": "refund please"},
        True,
        id="kw-full-width-keyword",
    ),
    pytest.param(
        {"type": "text", "keywords": ["money back"]},
        {"text": "I want my money\n  back"},
        True,
        id="kw-phrase-spaces",
    ),
    pytest.param(
        {"type": "text", "keywords": ["money back"]},
        {"text": "my money\u2028back, money\x0bback"},
        True,
        id="kw-phrase-unicode-spaces",
    ),
    pytest.param(
        {"type": "text", "keywords": ["c++"]}, {"text": "a C++ question"}, True, id="kw-symbols"
    ),
    pytest.param(
        {"type": "text", "keywords": ["退款"]}, {"text": "我要退款，谢谢"}, True, id="kw-chinese"
    ),
    pytest.param(
        {"type": "text", "keywords": ["退款"]}, {"text": "我要退货"}, False, id="kw-chinese-out"
    ),
    pytest.param(
        {"type": "text", "keywords": ["straße"]},
        {"text": "STRASSE 5"},
        True,
        id="kw-casefold",
    ),
    pytest.param(
        {"type": "text", "regex": r"order\s*#?\d{5}"},
        {"text": "About ORDER #12345"},
        True,
        id="regex-caseless",
    ),
    pytest.param({"type": "text", "regex": "退(款|货)"}, {"text": "我要退货"}, True, id="regex-zh"),
    pytest.param(
        {"type": "text", "regex": "^refund$"}, {"text": "refund now"}, False, id="regex-anchored"
    ),
    pytest.param(
        {"type": "text", "regex": "refund"},
        {"text": "ＲＥＦＵＮＤ"},
        True,
        id="regex-full-width-text",
    ),
    pytest.param(
        {"type": "subject", "keywords": ["urgent"]},
        {"subject": "URGENT: help", "text": "nothing"},
        True,
        id="subject-kw",
    ),
    pytest.param(
        {"type": "subject", "keywords": ["urgent"]},
        {"subject": "help", "text": "urgent"},
        False,
        id="subject-not-text",
    ),
    pytest.param(
        {"type": "subject", "regex": "."}, {"subject": None}, False, id="subject-none-regex"
    ),
    pytest.param({"type": "language", "in": ["zh-CN"]}, {"language": "zh"}, True, id="lang-in"),
    pytest.param({"type": "language", "in": ["EN"]}, {"language": "en"}, True, id="lang-case"),
    pytest.param({"type": "language", "in": ["en"]}, {"language": "zh"}, False, id="lang-out"),
    pytest.param({"type": "language", "in": ["en"]}, {"language": None}, False, id="lang-none"),
    pytest.param(
        {"type": "business_hours", "inside": True},
        {"open_calendars": {None: True}},
        True,
        id="hours-inside",
    ),
    pytest.param(
        {"type": "business_hours", "inside": True},
        {"open_calendars": {None: False}},
        False,
        id="hours-outside",
    ),
    pytest.param(
        {"type": "business_hours", "inside": False},
        {"open_calendars": {None: False}},
        True,
        id="hours-outside-wanted",
    ),
    pytest.param(
        {"type": "business_hours", "inside": True, "calendar_id": 3},
        {"open_calendars": {None: False, 3: True}},
        True,
        id="hours-named-calendar",
    ),
]


@pytest.mark.parametrize(("condition", "given", "expected"), CONDITIONS)
def test_a_condition_and_its_negation(
    condition: dict[str, Any], given: dict[str, Any], expected: bool
) -> None:
    assert rule([condition]).matches(facts(**given)) is expected
    assert rule([{**condition, "not": True}]).matches(facts(**given)) is (not expected)


@pytest.mark.parametrize("negate", [False, True])
@pytest.mark.parametrize("inside", [False, True])
def test_a_calendar_unknown_when_evaluated_matches_neither_way(negate: bool, inside: bool) -> None:
    condition = {"type": "business_hours", "inside": inside, "calendar_id": 9, "not": negate}
    assert not rule([condition]).matches(facts(open_calendars={None: True}))


CHANNEL_EMAIL = {"type": "channel", "in": ["email"]}
CHANNEL_WEB = {"type": "channel", "in": ["web"]}
TIER_TOP = {"type": "tier", "in": [1]}


@pytest.mark.parametrize(
    ("match", "conditions", "expected"),
    [
        pytest.param("all", [CHANNEL_EMAIL, TIER_TOP], True, id="all-both"),
        pytest.param("all", [CHANNEL_EMAIL, CHANNEL_WEB], False, id="all-one"),
        pytest.param("any", [CHANNEL_WEB, TIER_TOP], True, id="any-one"),
        pytest.param("any", [CHANNEL_WEB, {"type": "tier", "in": [2]}], False, id="any-none"),
        pytest.param("all", [], True, id="all-empty-matches-everything"),
        pytest.param("any", [], True, id="any-empty-matches-everything"),
        pytest.param("any", [{**CHANNEL_EMAIL, "not": True}, TIER_TOP], True, id="any-with-not"),
    ],
)
def test_match_all_and_any(match: str, conditions: list[dict[str, Any]], expected: bool) -> None:
    assert rule(conditions, match=match).matches(facts(tier=1)) is expected


def _team(team_id: int) -> dict[str, Any]:
    return {"type": "team", "team_id": team_id}


def _priority(value: int) -> dict[str, Any]:
    return {"type": "priority", "value": value}


def _sla(policy_id: int) -> dict[str, Any]:
    return {"type": "sla_policy", "sla_policy_id": policy_id}


STOP = {"type": "stop"}
ALL: list[dict[str, Any]] = []

# (rules as (id, position, enabled, conditions, actions), what the outcome says)
OUTCOMES = [
    pytest.param([], {"matched": (), "team_id": None, "priority": None}, id="no-rules"),
    pytest.param([(1, 1, True, ALL, [_team(5)])], {"team_id": 5}, id="team"),
    pytest.param([(1, 1, True, ALL, [_priority(7)])], {"priority": 7}, id="priority"),
    pytest.param([(1, 1, True, ALL, [_sla(3)])], {"sla_policy_id": 3}, id="sla-policy"),
    pytest.param(
        [(1, 1, True, ALL, [{"type": "tags", "add": [" VIP ", "Urgent", "vip"]}])],
        {"tags": ("vip", "urgent")},
        id="tags-normalised",
    ),
    pytest.param(
        [(1, 1, True, ALL, [{"type": "skills", "require": ["Billing", "zh"]}])],
        {"skills": ("billing", "zh")},
        id="skills",
    ),
    pytest.param(
        [(1, 1, True, ALL, [{"type": "account_manager"}])],
        {"to_account_manager": True},
        id="account-manager",
    ),
    pytest.param([(1, 1, True, ALL, [{"type": "complaint"}])], {"complaint": True}, id="complaint"),
    pytest.param(
        [(4, 1, True, ALL, [{"type": "auto_reply", "text": "Hi $name, we are on it"}])],
        {"auto_reply": "Hi $name, we are on it", "auto_reply_rule_id": 4},
        id="auto-reply",
    ),
    pytest.param(
        [
            (1, 1, True, ALL, [_team(1), _sla(1), _priority(2)]),
            (2, 2, True, ALL, [_team(2), _sla(2), _priority(9)]),
            (3, 3, True, ALL, [_priority(4)]),
        ],
        {"team_id": 1, "sla_policy_id": 1, "priority": 9},
        id="first-team-and-sla-win-highest-priority",
    ),
    pytest.param(
        [
            (1, 2, True, ALL, [_team(1)]),
            (2, 1, True, ALL, [_team(2)]),
        ],
        {"team_id": 2, "matched": (2, 1)},
        id="position-is-precedence",
    ),
    pytest.param(
        [
            (5, 1, True, ALL, [_team(5)]),
            (3, 1, True, ALL, [_team(3)]),
        ],
        {"team_id": 3, "matched": (3, 5)},
        id="same-position-then-id",
    ),
    pytest.param(
        [
            (1, 1, True, [CHANNEL_WEB], [_team(1)]),
            (2, 2, True, ALL, [_team(2)]),
        ],
        {"team_id": 2, "matched": (2,)},
        id="unmatched-rule-says-nothing",
    ),
    pytest.param(
        [
            (1, 1, True, ALL, [{"type": "tags", "add": ["a", "b"]}]),
            (2, 2, True, ALL, [{"type": "tags", "add": ["b", "c"]}]),
            (3, 3, True, ALL, [{"type": "skills", "require": ["x"]}]),
            (4, 4, True, ALL, [{"type": "skills", "require": ["y", "x"]}]),
        ],
        {"tags": ("a", "b", "c"), "skills": ("x", "y")},
        id="tags-and-skills-union-in-order",
    ),
    pytest.param(
        [
            (1, 1, True, ALL, [{"type": "auto_reply", "text": "first"}]),
            (2, 2, True, ALL, [{"type": "auto_reply", "text": "second"}, {"type": "complaint"}]),
        ],
        {"auto_reply": "first", "auto_reply_rule_id": 1, "complaint": True},
        id="first-auto-reply",
    ),
    pytest.param(
        [
            (1, 1, True, ALL, [_priority(2), STOP]),
            (2, 2, True, ALL, [_team(2), _priority(9)]),
        ],
        {"team_id": None, "priority": 2, "matched": (1,)},
        id="stop",
    ),
    pytest.param(
        [
            (1, 1, True, [CHANNEL_WEB], [_priority(2), STOP]),
            (2, 2, True, ALL, [_team(2)]),
        ],
        {"team_id": 2, "matched": (2,)},
        id="stop-only-when-matched",
    ),
    pytest.param(
        [
            (1, 1, False, ALL, [_team(1), STOP]),
            (2, 2, True, ALL, [_team(2)]),
        ],
        {"team_id": 2, "matched": (2,)},
        id="disabled-skipped",
    ),
]


@pytest.mark.parametrize(("rules", "expected"), OUTCOMES)
def test_the_outcome_of_the_rules(
    rules: list[tuple[int, int, bool, list[dict[str, Any]], list[dict[str, Any]]]],
    expected: dict[str, Any],
) -> None:
    parsed = [
        rule(conditions, actions, id=id, position=position, enabled=enabled)
        for id, position, enabled, conditions, actions in rules
    ]
    outcome = evaluate(parsed, facts())
    assert isinstance(outcome, RulesOutcome)
    for name, value in expected.items():
        if name == "matched" and value:
            assert tuple(m.id for m in outcome.matched) == value
            assert [m.name for m in outcome.matched] == [f"rule {i}" for i in value]
        else:
            assert getattr(outcome, name) == value, name


def test_every_matched_rule_is_listed_in_order_with_its_name() -> None:
    rules = [rule(ALL, [_priority(1)], id=i) for i in (3, 1, 2)]
    assert [(m.id, m.name) for m in evaluate(rules, facts()).matched] == [
        (1, "rule 1"),
        (2, "rule 2"),
        (3, "rule 3"),
    ]


def test_the_ids_a_rule_names_are_known_with_their_paths() -> None:
    parsed = rule(
        [
            {"type": "mailbox", "in": [4, 5]},
            {"type": "sms_number", "in": [6]},
            {"type": "business_hours", "inside": True},
            {"type": "business_hours", "inside": False, "calendar_id": 8},
        ],
        [_priority(1), _team(2), _sla(3)],
    )
    refs = parsed.references
    assert refs.teams == ((2, "actions[1].team_id"),)
    assert refs.sla_policies == ((3, "actions[2].sla_policy_id"),)
    assert refs.mailboxes == ((4, "conditions[0].in[0]"), (5, "conditions[0].in[1]"))
    assert refs.sms_numbers == ((6, "conditions[1].in[0]"),)
    assert refs.calendars == ((None, "conditions[2]"), (8, "conditions[3].calendar_id"))
    assert parsed.calendars == frozenset({None, 8})


# (conditions, actions, code, path): the domain refuses, whatever the API let through
REFUSED = [
    pytest.param(
        [{"type": "text", "regex": "(unclosed"}],
        NOTHING,
        "invalid_regex",
        "conditions[0].regex",
        id="regex-syntax",
    ),
    pytest.param(
        [CHANNEL_EMAIL, {"type": "subject", "regex": "(?<=a)b"}],
        NOTHING,
        "invalid_regex",
        "conditions[1].regex",
        id="regex-look-behind",
    ),
    pytest.param(
        [{"type": "text", "regex": r"(a)\1"}],
        NOTHING,
        "invalid_regex",
        "conditions[0].regex",
        id="regex-back-reference",
    ),
    pytest.param(
        [{"type": "text", "regex": "a" * 501}],
        NOTHING,
        "validation_error",
        "conditions[0].regex",
        id="regex-too-long",
    ),
    pytest.param(
        [{"type": "text", "keywords": ["ok", "  "]}],
        NOTHING,
        "validation_error",
        "conditions[0].keywords[1]",
        id="keyword-blank",
    ),
    pytest.param(
        [{"type": "text", "keywords": ["k"] * 51}],
        NOTHING,
        "validation_error",
        "conditions[0].keywords",
        id="too-many-keywords",
    ),
    pytest.param(
        [{"type": "text", "keywords": ["a"], "regex": "b"}],
        NOTHING,
        "validation_error",
        "conditions[0]",
        id="keywords-and-regex",
    ),
    pytest.param(
        [{"type": "weather", "in": ["rain"]}],
        NOTHING,
        "validation_error",
        "conditions[0].type",
        id="unknown-condition",
    ),
    pytest.param(
        [{"type": "tier", "in": [5]}], NOTHING, "validation_error", "conditions[0].in[0]", id="tier"
    ),
    pytest.param(
        [{"type": "channel", "in": ["fax"]}],
        NOTHING,
        "validation_error",
        "conditions[0].in[0]",
        id="channel",
    ),
    pytest.param(
        [{"type": "language", "in": ["english!"]}],
        NOTHING,
        "validation_error",
        "conditions[0].in[0]",
        id="language",
    ),
    pytest.param(
        [{"type": "mailbox", "in": [True]}],
        NOTHING,
        "validation_error",
        "conditions[0].in[0]",
        id="id-bool",
    ),
    pytest.param(
        [{"type": "channel", "in": ["web"], "extra": 1}],
        NOTHING,
        "validation_error",
        "conditions[0].extra",
        id="extra-field",
    ),
    pytest.param(
        ALL, [{"type": "priority", "value": 11}], "validation_error", "actions[0].value", id="prio"
    ),
    pytest.param(ALL, [], "validation_error", "actions", id="no-actions"),
    pytest.param(
        ALL, [_team(1), _team(2)], "duplicate_action", "actions[1]", id="duplicate-action"
    ),
    pytest.param(
        ALL,
        [{"type": "skills", "require": ["Bad Skill"]}],
        "validation_error",
        "actions[0].require[0]",
        id="skill-name",
    ),
    pytest.param(
        ALL,
        [{"type": "tags", "add": ["x" * 51]}],
        "validation_error",
        "actions[0].add[0]",
        id="tag-too-long",
    ),
    pytest.param(
        ALL,
        [{"type": "auto_reply", "text": "x" * 2001}],
        "validation_error",
        "actions[0].text",
        id="auto-reply-too-long",
    ),
    pytest.param(
        ALL,
        [{"type": "team", "team_id": None}],
        "validation_error",
        "actions[0].team_id",
        id="null",
    ),
]


@pytest.mark.parametrize(("conditions", "actions", "code", "path"), REFUSED)
def test_a_bad_rule_is_refused_with_where(
    conditions: list[dict[str, Any]], actions: list[dict[str, Any]], code: str, path: str
) -> None:
    with pytest.raises(Invalid) as refused:
        rule(conditions, actions)
    assert (refused.value.code, refused.value.details["path"]) == (code, path)


def test_a_bad_regex_says_what_re2_said() -> None:
    with pytest.raises(Invalid) as refused:
        rule([{"type": "text", "regex": "(unclosed"}])
    assert "missing )" in refused.value.details["reason"]


def test_a_pathological_regex_runs_in_linear_time() -> None:
    # catastrophic for a backtracking engine: (a+)+$ on "aaaa...!"; RE2 answers at once
    matched = rule([{"type": "text", "regex": "(a+)+$"}]).matches(facts(text="a" * 50_000 + "!"))
    assert matched is False


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param("我要退款，我的订单还没有到", "zh", id="zh-simplified"),
        pytest.param("請問我的訂單在哪裡", "zh", id="zh-traditional"),
        pytest.param("香港嘅服務好差", "zh", id="zh-cantonese-is-zh"),
        pytest.param("我要退款 refund", "zh", id="zh-with-an-english-word"),
        pytest.param("I want a refund for my order, it never arrived", "en", id="en"),
        pytest.param("Where is my order?", "en", id="en-short"),
        pytest.param("Bonjour, je voudrais un remboursement", "fr", id="fr"),
        pytest.param("こんにちは、注文が届きません", "ja", id="ja-has-kana"),
        pytest.param("ok", None, id="too-short"),
        pytest.param("12345 !!!", None, id="no-letters"),
        pytest.param("", None, id="empty"),
    ],
)
def test_the_language_of_a_text(text: str, language: str | None) -> None:
    assert detect_language(text) == language
