"""Routing rules: what an admin says about where work goes, evaluated purely.

INTERFACE (shared by the route job and the dry run): RoutingFacts, MatchedRule and
RulesOutcome keep their names and fields; evaluate(rules, facts) is the decision.

A rule is stored as two JSON values (routing_rules.conditions and .actions):

    conditions: {"match": "all" | "any", "conditions": [condition, ...]}
    actions:    [action, ...]   (at least one; each type at most once)

Conditions (each may carry "not": true, which negates it):
    channel         {"in": ["email", "sms", "web"]}
    mailbox         {"in": [mailbox ids]}            sms_number   {"in": [sms number ids]}
    tier            {"in": [1..4]}                   (rank; 1 is the top)
    contact_tag     {"any": [tags]} or {"all": [tags]}
    contact_field   {"field": "plan", "in": ["enterprise"]} or {"field": "x", "present": true}
                    (strings compare case-insensitively; other JSON values by their JSON text,
                    so 5 matches "5" and true matches "true"; a null value is not present)
    subject, text   {"keywords": [...]} or {"regex": "..."}
    language        {"in": ["zh", "en-GB"]}          (compared by primary subtag: "en")
    business_hours  {"inside": true|false, "calendar_id"?: id}  (no id: the default calendar)

Text matching (subject: the conversation's subject; text: the message text). Both sides are
NFKC-normalised (full-width "ＲＥＦＵＮＤ" is "REFUND") and compared case-insensitively. A
keyword that begins or ends with an ASCII letter or digit must stand on an ASCII word
boundary there: "refund" matches "Refund!" and "我要refund" but not "prefund" or
"refunded". Other keywords (Chinese has no spaces between words) match anywhere: "退款"
matches "我要退款". Spaces inside a keyword match any run of whitespace. Regular expressions
are RE2 (linear time, no look-around or back-references), case-insensitive. A conversation
without a subject matches no subject keyword or expression.

"not" is plain negation, with one exception: a business-hours condition whose calendar is
unknown when the rule runs (deleted since) does not match, with or without "not".

An empty list of conditions matches everything, whatever "match" says.

Evaluation, in (position, id) order, disabled rules skipped. Every matching rule contributes:
    team, sla_policy        the first matching rule that sets it wins (position is precedence)
    priority                the highest of the matching rules' (0..10)
    tags, skills            the union, in order of first appearance
    account_manager         route to the contact's account manager if any matching rule says so
    complaint               a complaint if any matching rule says so
    auto_reply              the first matching rule's text, with that rule's id
    stop                    no rule after this one is evaluated (this one still contributes)
`matched` lists every matching rule in evaluation order.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import re2

from contactcenter.domain.enums import Channel
from contactcenter.domain.errors import Invalid
from contactcenter.domain.skills import SKILL


@dataclass(frozen=True)
class RoutingFacts:
    """Everything a rule's conditions may test, gathered before evaluation."""

    channel: str
    mailbox_id: int | None
    sms_number_id: int | None
    tier: int
    contact_tags: tuple[str, ...]
    contact_fields: dict[str, Any]
    subject: str | None
    text: str
    # primary language subtag ("zh", "en"), detected from subject and text; None if unknown
    language: str | None
    at: datetime
    # whether `at` is inside the calendar a business-hours condition names: calendar id ->
    # open?  (None is the default calendar)
    open_calendars: dict[int | None, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class MatchedRule:
    id: int
    name: str


@dataclass(frozen=True)
class RulesOutcome:
    """What the matched rules decided; None / empty where no rule said anything."""

    matched: tuple[MatchedRule, ...] = ()
    team_id: int | None = None
    priority: int | None = None
    sla_policy_id: int | None = None
    tags: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    to_account_manager: bool = False
    complaint: bool = False
    auto_reply: str | None = None
    # the rule whose auto-reply it is
    auto_reply_rule_id: int | None = None


# ---- limits (the API's models say the same; the domain holds the line on its own too)

MAX_CONDITIONS = 50
MAX_VALUES = 100
MAX_KEYWORDS = 50
MAX_KEYWORD_CHARS = 100
MAX_REGEX_CHARS = 500
MAX_FIELD_NAME_CHARS = 100
MAX_FIELD_VALUE_CHARS = 200
MAX_TAG_CHARS = 50
MAX_SKILL_CHARS = 50
MAX_AUTO_REPLY_CHARS = 2000
MAX_PRIORITY = 10
MAX_ID = 2**63 - 1
TIERS = range(1, 5)

LANGUAGE = re.compile(r"^[a-z]{2,3}\Z")


class ConditionType(StrEnum):
    CHANNEL = "channel"
    MAILBOX = "mailbox"
    SMS_NUMBER = "sms_number"
    TIER = "tier"
    CONTACT_TAG = "contact_tag"
    CONTACT_FIELD = "contact_field"
    SUBJECT = "subject"
    TEXT = "text"
    LANGUAGE = "language"
    BUSINESS_HOURS = "business_hours"


class ActionType(StrEnum):
    TEAM = "team"
    PRIORITY = "priority"
    SLA_POLICY = "sla_policy"
    TAGS = "tags"
    SKILLS = "skills"
    ACCOUNT_MANAGER = "account_manager"
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto_reply"
    STOP = "stop"


# ---- normalising what is compared


# a message is normalised once, not once per rule that reads it (a few recent texts are kept)
@functools.lru_cache(maxsize=32)
def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


@functools.lru_cache(maxsize=32)
def fold(text: str) -> str:
    """For caseless comparison: NFKC, case-folded, NFKC again (as Unicode's NFKC_Casefold)."""
    return unicodedata.normalize("NFKC", nfkc(text).casefold())


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


def normalise_tag(value: str) -> str:
    """A tag as stored and compared: NFKC, trimmed, lowercase; 1-50 chars, one line."""
    tag = nfkc(value).strip().lower()
    if not 1 <= len(tag) <= MAX_TAG_CHARS or _has_control(tag):
        raise ValueError(f"a tag is 1 to {MAX_TAG_CHARS} characters without control characters")
    return tag


def normalise_skill(value: str) -> str:
    skill = value.strip().lower()
    # the one rule of domain/skills.py; a ValueError here becomes pydantic's 422 at the API
    if not SKILL.fullmatch(skill):
        raise ValueError("a skill is 1 to 50 of a-z, 0-9, _ and -")
    return skill


def normalise_language(value: str) -> str:
    """A language tag ("zh-CN", "en_GB", "EN") as rules compare it: the primary subtag."""
    primary = value.strip().replace("_", "-").split("-", 1)[0].lower()
    if not LANGUAGE.match(primary):
        raise ValueError("a language is an ISO 639 code such as en, zh or zh-CN")
    return primary


def field_text(value: object) -> str:
    """How a contact field's value is compared: strings as they are, the rest as JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return fold(text)


# ---- regular expressions, RE2 only


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    # RE2's default of 8 MiB let a 25-character expression take 0.2 s and 5 MB to compile;
    # with 1 MiB such a one is refused as too large, and compiling costs milliseconds
    options.max_mem = 1 << 20
    return options


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> Any:
    return re2.compile(pattern, _options())


def compile_regex(pattern: str) -> Any:
    """An admin's expression, NFKC-normalised like the text it is matched against; a
    ValueError with RE2's words when RE2 refuses it."""
    try:
        return _compile(nfkc(pattern))
    except re2.error as error:
        reason = error.args[0] if error.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(str(reason)) from None


def keyword_pattern(keyword: str) -> str:
    """One keyword as RE2 over folded text: ASCII word boundaries at an ASCII alphanumeric
    end, none elsewhere; any whitespace between words."""
    words = fold(keyword).split()
    if not words:
        raise ValueError("a keyword must not be blank")
    # RE2's \s is ASCII; Python's split() also splits at U+2028, U+0085, a vertical tab ...
    body = r"[\s\p{Z}\x{0B}\x{85}\x{1C}-\x{1F}]+".join(re2.escape(word) for word in words)
    first, last = words[0][0], words[-1][-1]
    start = r"\b" if first.isascii() and first.isalnum() else ""
    end = r"\b" if last.isascii() and last.isalnum() else ""
    return f"{start}{body}{end}"


# ---- conditions


@dataclass(frozen=True)
class Condition:
    negate: bool

    def test(self, facts: RoutingFacts) -> bool | None:
        """True or False; None when it cannot be told (the condition then does not match)."""
        raise NotImplementedError

    def holds(self, facts: RoutingFacts) -> bool:
        result = self.test(facts)
        return result is not None and result != self.negate


@dataclass(frozen=True)
class OneOf(Condition):
    """channel, mailbox, sms_number, tier, language: the fact is one of the values."""

    fact: ConditionType
    values: frozenset[object]

    def test(self, facts: RoutingFacts) -> bool:
        value = {
            ConditionType.CHANNEL: facts.channel,
            ConditionType.MAILBOX: facts.mailbox_id,
            ConditionType.SMS_NUMBER: facts.sms_number_id,
            ConditionType.TIER: facts.tier,
            ConditionType.LANGUAGE: facts.language,
        }[self.fact]
        return value is not None and value in self.values


@dataclass(frozen=True)
class ContactTags(Condition):
    tags: frozenset[str]
    every: bool

    def test(self, facts: RoutingFacts) -> bool:
        have = {fold(tag) for tag in facts.contact_tags}
        return self.tags <= have if self.every else bool(self.tags & have)


@dataclass(frozen=True)
class ContactField(Condition):
    name: str
    # one of: the values it may have, or whether it is there at all
    values: frozenset[str] | None
    present: bool | None

    def test(self, facts: RoutingFacts) -> bool:
        value = facts.contact_fields.get(self.name)
        if self.present is not None:
            return (value is not None) == self.present
        return value is not None and self.values is not None and field_text(value) in self.values


@dataclass(frozen=True)
class TextMatch(Condition):
    """subject or text: keywords (matched on folded text) or an expression (on NFKC text)."""

    on_subject: bool
    pattern: Any  # a compiled RE2 expression
    keywords: bool

    def test(self, facts: RoutingFacts) -> bool:
        text = facts.subject if self.on_subject else facts.text
        if text is None:
            return False
        return self.pattern.search(fold(text) if self.keywords else nfkc(text)) is not None


@dataclass(frozen=True)
class BusinessHours(Condition):
    calendar_id: int | None
    inside: bool

    def test(self, facts: RoutingFacts) -> bool | None:
        is_open = facts.open_calendars.get(self.calendar_id)
        return None if is_open is None else is_open == self.inside


# ---- actions


@dataclass(frozen=True)
class RuleActions:
    """A rule's actions (each type at most once), gathered."""

    team_id: int | None = None
    priority: int | None = None
    sla_policy_id: int | None = None
    tags: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    to_account_manager: bool = False
    complaint: bool = False
    auto_reply: str | None = None
    stop: bool = False


# ---- rules


@dataclass(frozen=True)
class References:
    """The ids a rule names, each with where: (id, path). A None calendar is the default."""

    teams: tuple[tuple[int, str], ...] = ()
    sla_policies: tuple[tuple[int, str], ...] = ()
    mailboxes: tuple[tuple[int, str], ...] = ()
    sms_numbers: tuple[tuple[int, str], ...] = ()
    calendars: tuple[tuple[int | None, str], ...] = ()


@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    position: int
    enabled: bool
    match_any: bool
    conditions: tuple[Condition, ...]
    actions: RuleActions
    references: References = field(default_factory=References, compare=False)

    def matches(self, facts: RoutingFacts) -> bool:
        if not self.conditions:
            return True
        results = (condition.holds(facts) for condition in self.conditions)
        return any(results) if self.match_any else all(results)

    @property
    def calendars(self) -> frozenset[int | None]:
        """The calendars its business-hours conditions read (None: the default)."""
        return frozenset(c.calendar_id for c in self.conditions if isinstance(c, BusinessHours))


def evaluate(rules: Iterable[Rule], facts: RoutingFacts) -> RulesOutcome:
    """What the enabled rules that match `facts` decide (see the module's docstring)."""
    outcome = _Outcome()
    for rule in sorted(rules, key=lambda r: (r.position, r.id)):
        if rule.enabled and rule.matches(facts):
            outcome.add(rule)
            if rule.actions.stop:
                break
    return outcome.result()


@dataclass
class _Outcome:
    matched: list[MatchedRule] = field(default_factory=list)
    team_id: int | None = None
    priority: int | None = None
    sla_policy_id: int | None = None
    tags: dict[str, None] = field(default_factory=dict)
    skills: dict[str, None] = field(default_factory=dict)
    to_account_manager: bool = False
    complaint: bool = False
    auto_reply: str | None = None
    auto_reply_rule_id: int | None = None

    def add(self, rule: Rule) -> None:
        actions = rule.actions
        self.matched.append(MatchedRule(rule.id, rule.name))
        if self.team_id is None:
            self.team_id = actions.team_id
        if self.sla_policy_id is None:
            self.sla_policy_id = actions.sla_policy_id
        if actions.priority is not None:
            self.priority = max(self.priority or 0, actions.priority)
        self.tags.update(dict.fromkeys(actions.tags))
        self.skills.update(dict.fromkeys(actions.skills))
        self.to_account_manager |= actions.to_account_manager
        self.complaint |= actions.complaint
        if self.auto_reply is None and actions.auto_reply is not None:
            self.auto_reply, self.auto_reply_rule_id = actions.auto_reply, rule.id

    def result(self) -> RulesOutcome:
        return RulesOutcome(
            matched=tuple(self.matched),
            team_id=self.team_id,
            priority=self.priority,
            sla_policy_id=self.sla_policy_id,
            tags=tuple(self.tags),
            skills=tuple(self.skills),
            to_account_manager=self.to_account_manager,
            complaint=self.complaint,
            auto_reply=self.auto_reply,
            auto_reply_rule_id=self.auto_reply_rule_id,
        )


# ---- parsing the stored (or posted) JSON into a Rule: every mistake is Invalid, with a path


def _refuse(path: str, message: str, code: str = "validation_error") -> Invalid:
    return Invalid(message, code=code, details={"path": path})


class _Refs:
    def __init__(self) -> None:
        self.found: dict[str, list[tuple[Any, str]]] = {
            "teams": [],
            "sla_policies": [],
            "mailboxes": [],
            "sms_numbers": [],
            "calendars": [],
        }

    def add(self, kind: str, value: Any, path: str) -> None:
        self.found[kind].append((value, path))

    def result(self) -> References:
        return References(**{kind: tuple(items) for kind, items in self.found.items()})


def _mapping(raw: object, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise _refuse(path, "must be an object")
    return raw


def _list(raw: object, path: str, *, most: int = MAX_VALUES, least: int = 1) -> list[Any]:
    if not isinstance(raw, list) or not least <= len(raw) <= most:
        raise _refuse(path, f"must be a list of {least} to {most} items")
    return raw


def _only(raw: Mapping[str, Any], path: str, allowed: set[str]) -> None:
    extra = set(raw) - allowed - {"type", "not"}
    if extra:
        raise _refuse(f"{path}.{sorted(extra)[0]}", "is not a field of this type")
    if not isinstance(raw.get("not", False), bool):
        raise _refuse(f"{path}.not", "must be true or false")


def _one_of(raw: Mapping[str, Any], path: str, names: tuple[str, str]) -> str:
    given = [name for name in names if raw.get(name) is not None]
    if len(given) != 1:
        raise _refuse(path, f"needs exactly one of {names[0]} and {names[1]}")
    return given[0]


def _whole(value: object, path: str, low: int = 1, high: int = MAX_ID) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _refuse(path, f"must be a whole number from {low} to {high}")
    return value


def _text(value: object, path: str, most: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > most:
        raise _refuse(path, f"must be text of 1 to {most} characters")
    return value


def _each(values: list[Any], path: str, convert: Callable[[Any], Any]) -> frozenset[Any]:
    out = []
    for i, value in enumerate(values):
        try:
            out.append(convert(value))
        except (ValueError, TypeError) as error:
            raise _refuse(f"{path}[{i}]", str(error)) from None
    return frozenset(out)


def _channel(value: object) -> str:
    if value not in set(Channel):
        raise ValueError(f"a channel is one of {', '.join(Channel)}")
    return str(value)


def _str(convert: Callable[[str], str]) -> Callable[[object], str]:
    def checked(value: object) -> str:
        if not isinstance(value, str):
            raise TypeError("must be text")
        return convert(value)

    return checked


def _scalar(value: object) -> str:
    if value is None or isinstance(value, list | dict):
        raise ValueError("must be text, a number or true/false")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if isinstance(value, str) and len(value) > MAX_FIELD_VALUE_CHARS:
        raise ValueError(f"must be at most {MAX_FIELD_VALUE_CHARS} characters")
    return field_text(value)


def _tier(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in TIERS:
        raise ValueError("a tier is a rank from 1 to 4")
    return value


_ONE_OF_VALUES: dict[ConditionType, Callable[[object], object]] = {
    ConditionType.CHANNEL: _channel,
    ConditionType.TIER: _tier,
    ConditionType.LANGUAGE: _str(normalise_language),
}
_ID_KINDS = {ConditionType.MAILBOX: "mailboxes", ConditionType.SMS_NUMBER: "sms_numbers"}


def _parse_one_of(kind: ConditionType, raw: Mapping[str, Any], path: str, refs: _Refs) -> OneOf:
    _only(raw, path, {"in"})
    values = _list(raw.get("in"), f"{path}.in")
    if kind in _ID_KINDS:
        ids = [_whole(v, f"{path}.in[{i}]") for i, v in enumerate(values)]
        for i, value in enumerate(ids):
            refs.add(_ID_KINDS[kind], value, f"{path}.in[{i}]")
        return OneOf(bool(raw.get("not", False)), kind, frozenset(ids))
    return OneOf(
        bool(raw.get("not", False)), kind, _each(values, f"{path}.in", _ONE_OF_VALUES[kind])
    )


def _parse_tags(raw: Mapping[str, Any], path: str) -> ContactTags:
    _only(raw, path, {"any", "all"})
    which = _one_of(raw, path, ("any", "all"))
    values = _list(raw[which], f"{path}.{which}")
    tags = _each(values, f"{path}.{which}", _str(lambda t: fold(normalise_tag(t))))
    return ContactTags(bool(raw.get("not", False)), tags, which == "all")


def _parse_field(raw: Mapping[str, Any], path: str) -> ContactField:
    _only(raw, path, {"field", "in", "present"})
    name = _text(raw.get("field"), f"{path}.field", MAX_FIELD_NAME_CHARS)
    negate = bool(raw.get("not", False))
    if _one_of(raw, path, ("in", "present")) == "present":
        if not isinstance(raw["present"], bool):
            raise _refuse(f"{path}.present", "must be true or false")
        return ContactField(negate, name, None, raw["present"])
    values = _each(_list(raw["in"], f"{path}.in"), f"{path}.in", _scalar)
    return ContactField(negate, name, values, None)


def _parse_text(kind: ConditionType, raw: Mapping[str, Any], path: str) -> TextMatch:
    _only(raw, path, {"keywords", "regex"})
    on_subject = kind == ConditionType.SUBJECT
    negate = bool(raw.get("not", False))
    if _one_of(raw, path, ("keywords", "regex")) == "regex":
        pattern = _text(raw["regex"], f"{path}.regex", MAX_REGEX_CHARS)
        try:
            compiled = compile_regex(pattern)
        except ValueError as error:
            raise Invalid(
                f"the regular expression is not valid: {error}",
                code="invalid_regex",
                details={"path": f"{path}.regex", "reason": str(error)},
            ) from None
        return TextMatch(negate, on_subject, compiled, keywords=False)
    keywords = _list(raw["keywords"], f"{path}.keywords", most=MAX_KEYWORDS)
    patterns = []
    for i, keyword in enumerate(keywords):
        where = f"{path}.keywords[{i}]"
        try:
            patterns.append(keyword_pattern(_text(keyword, where, MAX_KEYWORD_CHARS)))
        except ValueError as error:
            raise _refuse(where, str(error)) from None
    try:
        compiled = _compile("|".join(f"(?:{p})" for p in patterns))
    except re2.error:  # too large for RE2's memory budget
        raise _refuse(f"{path}.keywords", "too many or too long keywords") from None
    return TextMatch(negate, on_subject, compiled, keywords=True)


def _parse_hours(raw: Mapping[str, Any], path: str, refs: _Refs) -> BusinessHours:
    _only(raw, path, {"inside", "calendar_id"})
    inside = raw.get("inside")
    if not isinstance(inside, bool):
        raise _refuse(f"{path}.inside", "must be true or false")
    calendar_id = raw.get("calendar_id")
    if calendar_id is not None:
        calendar_id = _whole(calendar_id, f"{path}.calendar_id")
    refs.add("calendars", calendar_id, f"{path}.calendar_id" if calendar_id else path)
    return BusinessHours(bool(raw.get("not", False)), calendar_id, inside)


def _parse_condition(raw: object, path: str, refs: _Refs) -> Condition:
    condition = _mapping(raw, path)
    try:
        kind = ConditionType(str(condition.get("type")))
    except ValueError:
        raise _refuse(f"{path}.type", "is not a condition type") from None
    if kind in (ConditionType.SUBJECT, ConditionType.TEXT):
        return _parse_text(kind, condition, path)
    if kind == ConditionType.CONTACT_TAG:
        return _parse_tags(condition, path)
    if kind == ConditionType.CONTACT_FIELD:
        return _parse_field(condition, path)
    if kind == ConditionType.BUSINESS_HOURS:
        return _parse_hours(condition, path, refs)
    return _parse_one_of(kind, condition, path, refs)


def _parse_conditions(raw: object, refs: _Refs) -> tuple[bool, tuple[Condition, ...]]:
    block = _mapping(raw, "conditions")
    if set(block) - {"match", "conditions"}:
        raise _refuse("conditions", "has only match and conditions")
    match = block.get("match", "all")
    if match not in ("all", "any"):
        raise _refuse("conditions.match", "must be all or any")
    items = _list(block.get("conditions", []), "conditions", most=MAX_CONDITIONS, least=0)
    parsed = tuple(_parse_condition(c, f"conditions[{i}]", refs) for i, c in enumerate(items))
    return match == "any", parsed


def _action_value(kind: ActionType, raw: Mapping[str, Any], path: str, refs: _Refs) -> Any:
    """The one value an action sets on RuleActions."""
    simple = {ActionType.ACCOUNT_MANAGER, ActionType.COMPLAINT, ActionType.STOP}
    if kind in simple:
        _exactly(raw, path, set())
        return True
    name, convert = _ACTION_FIELDS[kind]
    _exactly(raw, path, {name})
    return convert(raw.get(name), f"{path}.{name}", refs)


def _exactly(raw: Mapping[str, Any], path: str, allowed: set[str]) -> None:
    extra = set(raw) - allowed - {"type"}
    if extra:
        raise _refuse(f"{path}.{sorted(extra)[0]}", "is not a field of this action")


def _team(value: object, path: str, refs: _Refs) -> int:
    team_id = _whole(value, path)
    refs.add("teams", team_id, path)
    return team_id


def _sla(value: object, path: str, refs: _Refs) -> int:
    sla_policy_id = _whole(value, path)
    refs.add("sla_policies", sla_policy_id, path)
    return sla_policy_id


def _priority(value: object, path: str, refs: _Refs) -> int:
    return _whole(value, path, 0, MAX_PRIORITY)


def _names(convert: Callable[[str], str]) -> Callable[[object, str, _Refs], tuple[str, ...]]:
    def names(value: object, path: str, refs: _Refs) -> tuple[str, ...]:
        out: dict[str, None] = {}
        for i, item in enumerate(_list(value, path)):
            try:
                out[_str(convert)(item)] = None
            except (ValueError, TypeError) as error:
                raise _refuse(f"{path}[{i}]", str(error)) from None
        return tuple(out)

    return names


def _reply(value: object, path: str, refs: _Refs) -> str:
    return _text(value, path, MAX_AUTO_REPLY_CHARS)


_ACTION_FIELDS: dict[ActionType, tuple[str, Callable[[object, str, _Refs], Any]]] = {
    ActionType.TEAM: ("team_id", _team),
    ActionType.PRIORITY: ("value", _priority),
    ActionType.SLA_POLICY: ("sla_policy_id", _sla),
    ActionType.TAGS: ("add", _names(normalise_tag)),
    ActionType.SKILLS: ("require", _names(normalise_skill)),
    ActionType.AUTO_REPLY: ("text", _reply),
}
# the RuleActions field each action type sets
_ACTION_TARGET = {
    ActionType.TEAM: "team_id",
    ActionType.PRIORITY: "priority",
    ActionType.SLA_POLICY: "sla_policy_id",
    ActionType.TAGS: "tags",
    ActionType.SKILLS: "skills",
    ActionType.ACCOUNT_MANAGER: "to_account_manager",
    ActionType.COMPLAINT: "complaint",
    ActionType.AUTO_REPLY: "auto_reply",
    ActionType.STOP: "stop",
}


def _parse_actions(raw: object, refs: _Refs) -> RuleActions:
    items = _list(raw, "actions", most=len(ActionType))
    values: dict[str, Any] = {}
    for i, item in enumerate(items):
        path = f"actions[{i}]"
        action = _mapping(item, path)
        try:
            kind = ActionType(str(action.get("type")))
        except ValueError:
            raise _refuse(f"{path}.type", "is not an action type") from None
        target = _ACTION_TARGET[kind]
        if target in values:
            raise _refuse(path, f"a rule has at most one {kind} action", "duplicate_action")
        values[target] = _action_value(kind, action, path, refs)
    return RuleActions(**values)


def parse_rule(
    *,
    id: int,
    name: str,
    conditions: object,
    actions: object,
    position: int = 1,
    enabled: bool = True,
) -> Rule:
    """A rule from its stored (or posted) form; Invalid, with a path, for anything wrong."""
    refs = _Refs()
    match_any, parsed = _parse_conditions(conditions, refs)
    gathered = _parse_actions(actions, refs)
    return Rule(
        id=id,
        name=name,
        position=position,
        enabled=enabled,
        match_any=match_any,
        conditions=parsed,
        actions=gathered,
        references=refs.result(),
    )
