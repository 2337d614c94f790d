"""The customer pyramid's pure rules: thresholds, shares, ties, value 0, validation, the
nightly schedule, and the contact attributes routing reads (tags, fields)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from contactcenter.domain.contacts import check_fields, merge_fields, normalise_tags
from contactcenter.domain.enums import TierMethod
from contactcenter.domain.errors import Invalid
from contactcenter.domain.tiers import (
    Tier,
    TierConfig,
    format_share,
    last_scheduled_run,
    parse_share,
    parse_value,
    problems,
    recompute_due,
    tier_for_value,
    validate,
)
from contactcenter.settings import Settings, SettingsError

D = Decimal


def config(
    method: TierMethod = TierMethod.SHARES,
    *,
    mins: tuple[str | None, ...] = ("100000", "20000", "2000", None),
    shares: tuple[str | None, ...] = ("1", "4", "15", None),
    labels: tuple[str, ...] = ("platinum", "gold", "silver", "bronze"),
) -> TierConfig:
    return TierConfig(
        method,
        tuple(
            Tier(
                rank,
                label,
                None if low is None else D(low),
                None if share is None else D(share),
            )
            for rank, label, low, share in zip((1, 2, 3, 4), labels, mins, shares, strict=True)
        ),
    )


THRESHOLDS = config(TierMethod.THRESHOLDS)
SHARES = config(TierMethod.SHARES)


@pytest.mark.parametrize(
    ("value", "tier"),
    [
        ("1000000", 1),
        ("100000", 1),  # at the threshold: in
        ("99999.99", 2),
        ("20000", 2),
        ("19999.99", 3),
        ("2000", 3),
        ("1999.99", 4),
        ("0.01", 4),
        ("0", 4),
    ],
)
def test_by_thresholds_a_value_earns_the_highest_tier_whose_minimum_it_reaches(
    value: str, tier: int
) -> None:
    assert tier_for_value(THRESHOLDS, D(value)) == tier


def test_a_value_of_0_is_the_bottom_tier_even_when_a_threshold_is_0() -> None:
    generous = config(TierMethod.THRESHOLDS, mins=("10", "5", "0", None))
    assert tier_for_value(generous, D("0.01")) == 3
    assert tier_for_value(generous, D("0")) == 4
    # by shares, a contact without value is nobody's top 1 %, whatever its position
    assert tier_for_value(SHARES, D("0"), rank=1, base=1) == 4


def ranks(values: list[int]) -> list[int]:
    """Each customer's position: 1 + the number with a greater value."""
    return [1 + sum(other > v for other in values) for v in values]


def test_by_shares_positions_split_at_the_cumulative_shares() -> None:
    # 200 customers with distinct values: top 1 % = 2, next 4 % = 8, next 15 % = 30
    values = list(range(200, 0, -1))
    tiers = [
        tier_for_value(SHARES, D(v), rank=r, base=200)
        for v, r in zip(values, ranks(values), strict=True)
    ]
    assert tiers == [1] * 2 + [2] * 8 + [3] * 30 + [4] * 160


def test_customers_of_equal_value_share_the_higher_tier_at_a_boundary() -> None:
    # positions 2 and 3 tie across the tier-1 boundary (2 of 200), so both are platinum;
    # positions 10..12 tie across the tier-2 boundary, so all three are gold
    values = [500, 400, 400, *range(300, 294, -1), 200, 200, 200, *range(190, 2, -1)]
    assert len(values) == 200
    tiers = [
        tier_for_value(SHARES, D(v), rank=r, base=200)
        for v, r in zip(values, ranks(values), strict=True)
    ]
    assert tiers[:3] == [1, 1, 1]
    assert tiers[9:12] == [2, 2, 2]
    assert tiers[12] == 3
    assert tiers.count(1) == 3 and tiers.count(2) == 9


def test_a_small_base_rounds_each_share_down() -> None:
    # 1 % of 50 customers is half a customer: nobody is platinum; 5 % is 2.5: two are gold
    assert tier_for_value(SHARES, D(100), rank=1, base=50) == 2
    assert tier_for_value(SHARES, D(90), rank=2, base=50) == 2
    assert tier_for_value(SHARES, D(80), rank=3, base=50) == 3


def test_shares_need_the_position_and_the_base() -> None:
    with pytest.raises(ValueError):
        tier_for_value(SHARES, D(10))


def codes(config: TierConfig) -> list[str]:
    return [p.code for p in problems(config)]


def with_tier(base: TierConfig, rank: int, **changes: object) -> TierConfig:
    tiers = list(base.tiers)
    tiers[rank - 1] = replace(tiers[rank - 1], **changes)  # type: ignore[arg-type]
    return TierConfig(base.method, tuple(tiers))


def test_the_defaults_are_valid_by_either_method() -> None:
    assert validate(THRESHOLDS) == THRESHOLDS
    assert validate(SHARES) == SHARES


@pytest.mark.parametrize(
    ("broken", "code"),
    [
        (with_tier(SHARES, 2, label=""), "tier_label_empty"),
        (with_tier(SHARES, 2, label="   "), "tier_label_empty"),
        (with_tier(SHARES, 2, label="x" * 41), "tier_label_too_long"),
        (with_tier(SHARES, 2, label="PLATINUM"), "tier_label_duplicate"),
        (with_tier(SHARES, 2, label="gold\nline"), "tier_label_invalid"),
        (with_tier(SHARES, 4, share_percent=D(80)), "bottom_tier_takes_the_rest"),
        (with_tier(THRESHOLDS, 4, min_value=D(1)), "bottom_tier_takes_the_rest"),
        (with_tier(THRESHOLDS, 2, min_value=None), "tier_min_value_required"),
        (with_tier(THRESHOLDS, 3, min_value=D(-1)), "tier_min_value_negative"),
        (with_tier(THRESHOLDS, 2, min_value=D(100000)), "tier_min_values_not_decreasing"),
        (with_tier(THRESHOLDS, 3, min_value=D(30000)), "tier_min_values_not_decreasing"),
        (with_tier(SHARES, 3, share_percent=None), "tier_share_required"),
        (with_tier(SHARES, 1, share_percent=D(0)), "tier_share_not_positive"),
        (with_tier(SHARES, 3, share_percent=D("95.001")), "tier_shares_over_100"),
        (TierConfig(TierMethod.SHARES, SHARES.tiers[:3]), "tier_ranks"),
        (TierConfig(TierMethod.SHARES, (*SHARES.tiers[:3], SHARES.tiers[0])), "tier_ranks"),
    ],
)
def test_a_broken_configuration_is_refused_with_its_code(broken: TierConfig, code: str) -> None:
    assert code in codes(broken)
    with pytest.raises(Invalid) as refused:
        validate(broken)
    assert refused.value.code == codes(broken)[0]
    assert code in [p["code"] for p in refused.value.details["problems"]]


def test_only_the_rule_in_force_needs_its_numbers() -> None:
    no_shares = config(TierMethod.THRESHOLDS, shares=(None, None, None, None))
    assert codes(no_shares) == []
    assert codes(replace(no_shares, method=TierMethod.SHARES)) == ["tier_share_required"] * 3
    # shares adding up to exactly 100 leave nobody for the bottom tier, which is allowed
    assert codes(config(shares=("10", "40", "50", None))) == []


def test_tiers_given_out_of_order_are_put_in_rank_order() -> None:
    shuffled = TierConfig(TierMethod.SHARES, tuple(reversed(SHARES.tiers)))
    assert validate(shuffled) == SHARES


def test_labels_do_not_change_the_rules_but_numbers_and_the_method_do() -> None:
    assert not with_tier(SHARES, 1, label="diamond").rules_differ(SHARES)
    assert with_tier(SHARES, 1, share_percent=D(2)).rules_differ(SHARES)
    assert replace(SHARES, method=TierMethod.THRESHOLDS).rules_differ(SHARES)
    # by shares the thresholds are unused, so changing them changes nothing
    assert not with_tier(SHARES, 1, min_value=D(5)).rules_differ(SHARES)
    # nor does a tier's default SLA policy, which validation leaves as it is
    with_policy = with_tier(SHARES, 2, sla_policy_id=7)
    assert not with_policy.rules_differ(SHARES)
    assert validate(with_policy).tiers[1].sla_policy_id == 7


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (0, "0.00"),
        (12, "12.00"),
        (12.5, "12.50"),
        (0.1, "0.10"),
        ("1234.5", "1234.50"),
        (" 99.99 ", "99.99"),
        ("99999999999999.99", "99999999999999.99"),
        (Decimal("7"), "7.00"),
    ],
)
def test_a_value_is_a_decimal_given_as_a_number_or_a_string(raw: object, parsed: str) -> None:
    assert str(parse_value(raw)) == parsed


@pytest.mark.parametrize(
    "raw",
    [
        -1,
        "-1",
        "1.234",
        0.001,
        "100000000000000",
        1e14,
        "1e3",
        "NaN",
        float("nan"),
        float("inf"),
        "",
        "12,50",
        True,
        None,
        [1],
    ],
)
def test_a_value_that_does_not_fit_is_refused(raw: object) -> None:
    with pytest.raises(Invalid) as refused:
        parse_value(raw)
    assert refused.value.code == "invalid_value"


def test_shares_are_percentages_with_three_decimals() -> None:
    assert parse_share("12.125") == D("12.125")
    assert format_share(D("1.000")) == "1"
    assert format_share(D("12.500")) == "12.5"
    assert format_share(D("100.000")) == "100"
    for bad in ("100.001", 150, "1.0001", -2):
        with pytest.raises(Invalid):
            parse_share(bad)


def test_the_nightly_run_is_due_once_the_scheduled_hour_passed_since_the_last() -> None:
    hour = 2
    at = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)
    assert last_scheduled_run(at, hour) == at
    assert last_scheduled_run(at - timedelta(seconds=1), hour) == at - timedelta(days=1)
    # another time zone is the same instant
    assert last_scheduled_run(at.astimezone(timezone(timedelta(hours=8))), hour) == at

    assert recompute_due(None, at, hour)  # never ran
    assert not recompute_due(at, at + timedelta(hours=5), hour)  # ran at 02:00 today
    assert recompute_due(at - timedelta(minutes=1), at + timedelta(minutes=10), hour)
    # a manual run at 01:00 does not replace the nightly one
    assert recompute_due(at - timedelta(hours=1), at + timedelta(minutes=1), hour)
    # the workers were down for two days: the first check after catches up, once
    late = at + timedelta(days=2, hours=7)
    assert recompute_due(at - timedelta(hours=1), late, hour)
    assert not recompute_due(late, late + timedelta(hours=1), hour)


def test_tags_are_trimmed_lowercased_and_unique() -> None:
    assert normalise_tags([" VIP ", "vip", "Wholesale", "中文"]) == ["vip", "wholesale", "中文"]
    for bad, code in (
        ([""], "invalid_tag"),
        (["   "], "invalid_tag"),
        (["x" * 51], "invalid_tag"),
        (["a\nb"], "invalid_tag"),
        (["a\x00"], "invalid_tag"),
        ([f"t{i}" for i in range(51)], "too_many_tags"),
    ):
        with pytest.raises(Invalid) as refused:
            normalise_tags(bad)
        assert refused.value.code == code


def test_fields_are_flat_and_merge_key_by_key() -> None:
    patch = check_fields({"plan": "gold", "seats": 12, "ratio": 0.5, "trial": False, "old": None})
    assert merge_fields({"old": 1, "region": "eu"}, patch) == {
        "region": "eu",
        "plan": "gold",
        "seats": 12,
        "ratio": 0.5,
        "trial": False,
    }
    for bad, code in (
        ({"Plan": 1}, "invalid_field_key"),
        ({"": 1}, "invalid_field_key"),
        ({"k" * 65: 1}, "invalid_field_key"),
        ({"a-b": 1}, "invalid_field_key"),
        ({"nested": {"a": 1}}, "invalid_field_value"),
        ({"list": [1]}, "invalid_field_value"),
        ({"long": "x" * 501}, "invalid_field_value"),
        ({"nan": float("nan")}, "invalid_field_value"),
        ({"big": 2**60}, "invalid_field_value"),
        ({"nul": "a\x00b"}, "invalid_field_value"),
        ({f"k{i}": i for i in range(51)}, "too_many_fields"),
    ):
        with pytest.raises(Invalid) as refused:
            check_fields(bad)
        assert refused.value.code == code
    full = {f"k{i}": i for i in range(50)}
    with pytest.raises(Invalid) as refused:
        merge_fields(full, {"one_more": 1})
    assert refused.value.code == "too_many_fields"
    assert len(merge_fields(full, {"k0": None, "one_more": 1})) == 50


def test_the_hour_of_the_nightly_run_is_a_setting() -> None:
    assert Settings().tier_recompute_hour == 2
    assert Settings.from_env({"TIER_RECOMPUTE_HOUR": "23"}).tier_recompute_hour == 23
    for bad in ("24", "-1", "two"):
        with pytest.raises(SettingsError):
            Settings.from_env({"TIER_RECOMPUTE_HOUR": bad})
