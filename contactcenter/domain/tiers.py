"""The customer pyramid: four ordered tiers, and the rule that puts a customer in one.

Rank 1 is the top. The bottom tier (rank 4) takes everyone the others do not, so it has no
threshold and no share of its own. Two methods:

- thresholds: a customer whose value is at least a tier's `min_value` is in it (the highest
  such tier);
- shares: customers ranked by value, the top `share_percent` % are in tier 1, the next
  `share_percent` % in tier 2, and so on. A customer's position is 1 + the number of customers
  with a greater value, so customers of equal value share a position, and at a boundary they
  all go to the higher tier: a tier holds at most its share, unless a tie carries it over.
  The share of a small base is rounded down (top 1 % of 50 customers is nobody).

The share base is the customers with a value above 0, not every contact: a contact center
has many contacts nobody recorded a value for (a one-off web visitor, an SMS sender), and "the
top 1 % of our customers" means of the customers who bring value. Counting the others would
let the number of anonymous visitors decide who is platinum.

A value of 0 is no evidence at all, so a contact whose value is 0 is in the bottom tier, by
either method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from contactcenter.domain.enums import TierMethod
from contactcenter.domain.errors import Invalid

RANKS = (1, 2, 3, 4)
BOTTOM = 4
# the tiers above the bottom one, which have a threshold or a share
UPPER = (1, 2, 3)
MAX_LABEL_CHARS = 40
# contacts.value and tiers.min_value are numeric(16, 2): 14 digits before the point, 2 after
VALUE_INTEGER_DIGITS = 14
VALUE_PLACES = 2
# tiers.share_percent is numeric(6, 3)
SHARE_PLACES = 3


@dataclass(frozen=True)
class Tier:
    rank: int
    label: str
    min_value: Decimal | None = None
    share_percent: Decimal | None = None
    # the SLA policy of the tier's conversations when no routing rule names one (not a rule
    # of the pyramid: a change of it recomputes nothing)
    sla_policy_id: int | None = None


@dataclass(frozen=True)
class TierConfig:
    method: TierMethod
    # ranks 1 to 4, in order (validate() makes sure)
    tiers: tuple[Tier, ...]

    def bounds(self) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
        """What a recompute is given for tiers 1 to 3: their thresholds, or (by shares) the
        cumulative share of the customers that ends each tier."""
        if self.method == TierMethod.THRESHOLDS:
            first, second, third = (self.tiers[r - 1].min_value for r in UPPER)
            return first, second, third
        return cumulative_shares(self)

    def rules_differ(self, other: TierConfig) -> bool:
        """Whether tiers computed under `other` may differ from tiers under this (labels do
        not count)."""
        return self.method != other.method or self.bounds() != other.bounds()


def cumulative_shares(config: TierConfig) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    running: Decimal | None = Decimal(0)
    totals: list[Decimal | None] = []
    for rank in UPPER:
        share = config.tiers[rank - 1].share_percent
        running = None if running is None or share is None else running + share
        totals.append(running)
    return totals[0], totals[1], totals[2]


# --- parsing what callers send --------------------------------------------------------------


def parse_decimal(
    raw: object, *, integer_digits: int, places: int, code: str, name: str
) -> Decimal:
    """A JSON number or a decimal string ("1234.50") that is >= 0 and fits the column, else
    Invalid with `code`. Floats are read through their shortest repr, so 0.1 is 0.1."""
    problem = f"{name} must be a number >= 0 with at most {integer_digits} digits before the "
    problem += f"point and {places} after"
    if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
        raise Invalid(problem, code=code, details={"field": name})
    try:
        if isinstance(raw, float):
            if not math.isfinite(raw):
                raise InvalidOperation
            number = Decimal(repr(raw))
        elif isinstance(raw, str):
            text = raw.strip()
            if not text or any(c not in "0123456789." for c in text):
                raise InvalidOperation  # no exponents, signs, NaN or spaces inside
            number = Decimal(text)
        else:
            number = Decimal(raw)
    except (InvalidOperation, ValueError):
        raise Invalid(problem, code=code, details={"field": name}) from None
    exponent = number.as_tuple().exponent
    if (
        not number.is_finite()
        or number < 0
        or (isinstance(exponent, int) and exponent < -places)
        or number >= Decimal(10) ** integer_digits
    ):
        raise Invalid(problem, code=code, details={"field": name})
    return number.quantize(Decimal(1).scaleb(-places))


def parse_value(raw: object, *, code: str = "invalid_value", name: str = "value") -> Decimal:
    """A customer's value (money: up to 14 digits before the point, 2 after)."""
    return parse_decimal(
        raw, integer_digits=VALUE_INTEGER_DIGITS, places=VALUE_PLACES, code=code, name=name
    )


def parse_share(raw: object, *, name: str = "share_percent") -> Decimal:
    """A share in percent, 0 to 100 with up to 3 decimals."""
    share = parse_decimal(
        raw, integer_digits=3, places=SHARE_PLACES, code="invalid_share_percent", name=name
    )
    if share > 100:
        raise Invalid(
            f"{name} is at most 100", code="invalid_share_percent", details={"field": name}
        )
    return share


def format_share(share: Decimal | None) -> str | None:
    """1.000 -> "1", 12.500 -> "12.5" (shares are shown without trailing zeros)."""
    if share is None:
        return None
    text = f"{share:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# --- validation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    rank: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "rank": self.rank}


def problems(config: TierConfig) -> list[Problem]:
    """Everything wrong with a configuration, in the order a reader fixes it."""
    ranks = [t.rank for t in config.tiers]
    if sorted(ranks) != list(RANKS):
        return [Problem("tier_ranks", "give the four tiers, ranks 1 to 4, once each")]
    tiers = sorted(config.tiers, key=lambda t: t.rank)
    found = _label_problems(tiers)
    bottom = tiers[-1]
    if bottom.min_value is not None or bottom.share_percent is not None:
        found.append(
            Problem(
                "bottom_tier_takes_the_rest",
                "the bottom tier takes everyone else: leave its min_value and share_percent out",
                BOTTOM,
            )
        )
    if config.method == TierMethod.THRESHOLDS:
        found.extend(_threshold_problems(tiers))
    else:
        found.extend(_share_problems(tiers))
    return found


def _label_problems(tiers: list[Tier]) -> list[Problem]:
    found = []
    seen: set[str] = set()
    for tier in tiers:
        label = tier.label
        if not label.strip():
            found.append(Problem("tier_label_empty", "a label must not be empty", tier.rank))
        elif len(label) > MAX_LABEL_CHARS:
            found.append(
                Problem(
                    "tier_label_too_long",
                    f"a label is at most {MAX_LABEL_CHARS} characters",
                    tier.rank,
                )
            )
        elif label != label.strip() or not label.isprintable():
            found.append(
                Problem(
                    "tier_label_invalid",
                    "a label is one line, without control characters or outer spaces",
                    tier.rank,
                )
            )
        elif label.casefold() in seen:
            found.append(
                Problem("tier_label_duplicate", f"the label {label!r} is used twice", tier.rank)
            )
        seen.add(label.casefold())
    return found


def _threshold_problems(tiers: list[Tier]) -> list[Problem]:
    found = []
    previous: Decimal | None = None
    for tier in tiers[:-1]:
        if tier.min_value is None:
            found.append(
                Problem(
                    "tier_min_value_required",
                    "by thresholds, tiers 1 to 3 need a min_value",
                    tier.rank,
                )
            )
            continue
        if tier.min_value < 0:
            found.append(Problem("tier_min_value_negative", "a min_value is at least 0", tier.rank))
        if previous is not None and tier.min_value >= previous:
            found.append(
                Problem(
                    "tier_min_values_not_decreasing",
                    "each tier's min_value must be below the one of the tier above",
                    tier.rank,
                )
            )
        previous = tier.min_value
    return found


def _share_problems(tiers: list[Tier]) -> list[Problem]:
    found = []
    total = Decimal(0)
    for tier in tiers[:-1]:
        if tier.share_percent is None:
            found.append(
                Problem(
                    "tier_share_required",
                    "by shares, tiers 1 to 3 need a share_percent",
                    tier.rank,
                )
            )
        elif tier.share_percent <= 0:
            found.append(
                Problem("tier_share_not_positive", "a share_percent is above 0", tier.rank)
            )
        else:
            total += tier.share_percent
    if total > 100:
        found.append(
            Problem(
                "tier_shares_over_100",
                "the shares of tiers 1 to 3 add up to more than 100 %",
            )
        )
    return found


def validate(config: TierConfig) -> TierConfig:
    """The configuration with its tiers in rank order, or Invalid with the first problem's
    code and every problem in details."""
    found = problems(config)
    if found:
        raise Invalid(
            found[0].message,
            code=found[0].code,
            details={"problems": [p.as_dict() for p in found]},
        )
    return TierConfig(config.method, tuple(sorted(config.tiers, key=lambda t: t.rank)))


# --- one customer ---------------------------------------------------------------------------


def tier_for_value(
    config: TierConfig, value: Decimal, *, rank: int | None = None, base: int | None = None
) -> int:
    """The tier a value earns. By shares, `rank` is the customer's position (1 + the number of
    customers with a greater value) and `base` the number of customers with a value above 0
    (the customer included)."""
    if value <= 0:
        return BOTTOM
    if config.method == TierMethod.THRESHOLDS:
        for tier in config.tiers[:-1]:
            if tier.min_value is not None and value >= tier.min_value:
                return tier.rank
        return BOTTOM
    if rank is None or base is None:
        raise ValueError("by shares, a tier needs the customer's rank and the base")
    for tier_rank, cumulative in zip(UPPER, cumulative_shares(config), strict=True):
        # the position is inside the top `cumulative` % of the base, rounded down
        if cumulative is not None and rank * 100 <= cumulative * base:
            return tier_rank
    return BOTTOM


# --- the nightly schedule -------------------------------------------------------------------


def last_scheduled_run(now: datetime, hour: int) -> datetime:
    """The latest `hour`:00 UTC at or before `now`: a recompute is due when the last one
    happened before it (so a run missed while no worker was up happens at the next check)."""
    utc = now.astimezone(UTC)
    today = utc.replace(hour=hour, minute=0, second=0, microsecond=0)
    return today if utc >= today else today - timedelta(days=1)


def recompute_due(recomputed_at: datetime | None, now: datetime, hour: int) -> bool:
    return recomputed_at is None or recomputed_at < last_scheduled_run(now, hour)
