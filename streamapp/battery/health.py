"""Weekly State of Health per VIN, monotone, with its end of life (pure).

Usable sessions are collected per ISO week (of their end, UTC); a week is published
once the VIN's event time passes its end by `week_grace_h`, as one `battery-health`
record. The week's estimate (`soh_raw`) is the weighted mean of its sessions' SoH
after the outlier rules (against the VIN's recent weeks, and within the week), each
session weighted by its inverse variance (the square of its SoC window, times
`dc_weight` for DC). `soh` is the isotonic (non-increasing) fit of the VIN's weekly
estimates so far (each averaged over `smoothing_weeks`) at the newest week, plus
`ceiling_z` standard errors, and never above what was published before: a published
value is not recalled, so it cannot rise, and the series is a running minimum, which
the added errors keep from reading low. A VIN's first weeks wait for `first_sessions`
usable sessions and are published together, so one noisy session cannot set the
ceiling. The nominal capacity comes from the vehicle table, or a reported
`nominal_kwh`, or is learned from the first `nominal_weeks` weeks. docs/battery.md
has the method and its accuracy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from streamapp.battery import fade
from streamapp.battery.rules import HealthRules
from streamapp.battery.sessions import ChargeSession
from streamapp.contracts.codec import format_ts

DAY_MS = 86_400_000.0
WEEK_MS = 7 * DAY_MS
_MONDAY_OFFSET_MS = 3 * DAY_MS  # 1970-01-01 was a Thursday


def week_of(ts_ms: float) -> float:
    """The start (Monday 00:00 UTC) of the ISO week holding `ts_ms`."""
    return math.floor((ts_ms + _MONDAY_OFFSET_MS) / WEEK_MS) * WEEK_MS - _MONDAY_OFFSET_MS


@dataclass(frozen=True, slots=True)
class WeekHealth:
    """One VIN's week, as `battery-health` carries it."""

    vin: str
    week_ms: float
    soh: float | None
    soh_raw: float | None
    soh_lower: float | None
    soh_upper: float | None
    sessions: int
    capacity_kwh: float | None
    nominal_kwh: float
    nominal_source: str
    odometer_km: float | None
    end_of_life: dict[str, Any] | None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "vin": self.vin,
            "week": format_ts(self.week_ms)[:10],
            "soh": _round(self.soh),
            "soh_raw": _round(self.soh_raw),
            "soh_lower": _round(self.soh_lower),
            "soh_upper": _round(self.soh_upper),
            "sessions": self.sessions,
            "capacity_kwh": _round(self.capacity_kwh),
            "nominal_kwh": round(self.nominal_kwh, 3),
            "nominal_source": self.nominal_source,
            "odometer_km": None if self.odometer_km is None else round(self.odometer_km, 1),
            "end_of_life": self.end_of_life,
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json_dict(), separators=(",", ":")).encode()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


Estimate = tuple[float, float, float, float | None]


@dataclass(slots=True)
class HealthState:
    """What a VIN's health needs of its past; plain lists, so it stores as JSON."""

    nominal_kwh: float | None = None
    nominal_source: str | None = None  # table, reported or learned
    first_ms: float | None = None  # end of the VIN's first session
    #: week start -> its sessions' [capacity or None (unusable), weight, odometer or None]
    pending: dict[float, list[list[float | None]]] = field(default_factory=dict)
    #: published weeks with an estimate: (week start, soh_raw, weight, odometer or None)
    history: list[Estimate] = field(default_factory=list)
    soh: float | None = None  # the last published
    published_ms: float = -math.inf  # the last published week's start

    def to_dict(self) -> dict[str, Any]:
        return {
            "nominal_kwh": self.nominal_kwh,
            "nominal_source": self.nominal_source,
            "first_ms": self.first_ms,
            "pending": [[week, sessions] for week, sessions in self.pending.items()],
            "history": self.history,
            "soh": self.soh,
            "published_ms": None if self.published_ms == -math.inf else self.published_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthState:
        published = data.get("published_ms")
        return cls(
            data.get("nominal_kwh"),
            data.get("nominal_source"),
            data.get("first_ms"),
            {float(week): sessions for week, sessions in data.get("pending", [])},
            [(e[0], e[1], e[2], e[3]) for e in data.get("history", [])],
            data.get("soh"),
            -math.inf if published is None else float(published),
        )


def add(state: HealthState, session: ChargeSession, rules: HealthRules) -> None:
    """Count a closed session in its week (unusable ones count as seen, not measured),
    weighted by its inverse variance: the square of its SoC window, less for DC."""
    week = max(week_of(session.end_ms), state.published_ms + WEEK_MS)
    if state.first_ms is None:
        state.first_ms = session.end_ms
    capacity = session.capacity_kwh if session.usable else None
    weight = (session.soc_window / 100.0) ** 2 * (rules.dc_weight if session.kind == "dc" else 1.0)
    state.pending.setdefault(week, []).append([capacity, weight, session.odometer_km])


def advance(vin: str, state: HealthState, newest_ms: float, rules: HealthRules) -> list[WeekHealth]:
    """Publish the weeks the VIN's event time has passed (learning the nominal first if
    it has to), oldest first. Until a VIN has its first estimate, its weeks from the
    first with a usable session wait for `first_sessions` usable sessions (at most
    `first_hold_weeks`) and are published together at the pooled value: a published
    SoH is a ceiling for good, so one noisy session must not set it."""
    if state.nominal_kwh is None and not _learn_nominal(state, newest_ms, rules):
        return []
    grace_ms = rules.week_grace_h * 3.6e6
    due = sorted(week for week in state.pending if week + WEEK_MS + grace_ms <= newest_ms)
    if not due:
        return []
    if state.history:
        return [_publish(vin, state, week, rules) for week in due]
    published: list[WeekHealth] = []
    while due and not any(capacity is not None for capacity, _, _ in state.pending[due[0]]):
        # Nothing measured yet: nothing to wait for.
        week = due.pop(0)
        published.append(_publish_first(vin, state, [week], rules)[0])
    if not due:
        return published
    usable = sum(capacity is not None for week in due for capacity, _, _ in state.pending[week])
    held_ms = newest_ms - (due[0] + WEEK_MS + grace_ms)
    if usable < rules.first_sessions and held_ms < rules.first_hold_weeks * WEEK_MS:
        return published
    return published + _publish_first(vin, state, due, rules)


def _learn_nominal(state: HealthState, newest_ms: float, rules: HealthRules) -> bool:
    """Learn the nominal from the first weeks' usable sessions once they are over: the
    weighted median of their capacities (SoH 100 then)."""
    if state.first_ms is None:
        return False
    first_week = week_of(state.first_ms)
    end = first_week + rules.nominal_weeks * WEEK_MS
    if newest_ms < end + rules.week_grace_h * 3.6e6:
        return False
    found = [
        (capacity, weight)
        for week, sessions in state.pending.items()
        if week < end
        for capacity, weight, _ in sessions
        if capacity is not None and weight is not None
    ]
    if not found:
        return False
    state.nominal_kwh = _weighted_median(found)
    state.nominal_source = "learned"
    return True


def _weighted_median(values: list[tuple[float, float]]) -> float:
    ordered = sorted(values)
    half = sum(weight for _, weight in ordered) / 2.0
    total = 0.0
    for value, weight in ordered:
        total += weight
        if total >= half:
            return value
    return ordered[-1][0]


Measured = list[tuple[float, float]]  # (SoH of a session, its weight)


def _measured(state: HealthState, week: float) -> tuple[Measured, float | None]:
    """Take a pending week: its usable sessions' SoH and weights, and its odometer."""
    sessions = state.pending.pop(week)
    nominal = state.nominal_kwh
    assert nominal is not None
    odometers = [odo for _, _, odo in sessions if odo is not None]
    odometer = max(odometers) if odometers else _last_odometer(state)
    values = [
        (100.0 * capacity / nominal, weight)
        for capacity, weight, _ in sessions
        if capacity is not None and weight is not None
    ]
    return values, odometer


def _estimate(state: HealthState, week: float, kept: Measured, odometer: float | None) -> None:
    """Record a week's estimate (the weighted mean of its kept sessions) in the history."""
    if kept:
        weight = sum(w for _, w in kept)
        state.history.append((week, sum(v * w for v, w in kept) / weight, weight, odometer))


def _publish(vin: str, state: HealthState, week: float, rules: HealthRules) -> WeekHealth:
    values, odometer = _measured(state, week)
    recent = [(raw, weight) for _, raw, weight, _ in state.history[-rules.smoothing_weeks :]]
    kept = _kept(values, _weighted_median(recent), rules)
    _estimate(state, week, kept, odometer)
    state.published_ms = week
    if not kept:
        return _record(vin, state, week, state.soh, [], None, odometer, rules)
    fitted, error = monotone_end(state.history, rules.smoothing_weeks)
    bound = fitted + rules.ceiling_z * error
    state.soh = bound if state.soh is None else min(state.soh, bound)
    return _record(vin, state, week, state.soh, kept, error, odometer, rules)


def _publish_first(
    vin: str, state: HealthState, due: list[float], rules: HealthRules
) -> list[WeekHealth]:
    """The VIN's first weeks at once: outliers judged against all their sessions, and
    each week at the pooled fit (the fade over a few weeks is far below the noise)."""
    taken = [(week, *_measured(state, week)) for week in due]
    pooled = [value for _, values, _ in taken for value in values]
    reference = _weighted_median(pooled) if len(pooled) >= 3 else None
    kept = {week: _kept(values, reference, rules) for week, values, _ in taken}
    for week, _, odometer in taken:
        _estimate(state, week, kept[week], odometer)
    state.published_ms = due[-1]
    if not state.history:
        return [_record(vin, state, w, None, [], None, odo, rules) for w, _, odo in taken]
    fitted, error = monotone_end(state.history, rules.smoothing_weeks)
    soh = state.soh = fitted + rules.ceiling_z * error
    return [_record(vin, state, w, soh, kept[w], error, odo, rules) for w, _, odo in taken]


def _record(
    vin: str,
    state: HealthState,
    week: float,
    soh: float | None,
    kept: Measured,
    error: float | None,
    odometer: float | None,
    rules: HealthRules,
) -> WeekHealth:
    """The week's `battery-health` record (estimate, interval and end of life only for a
    week with kept sessions)."""
    nominal = state.nominal_kwh
    assert nominal is not None
    source = state.nominal_source or "table"
    if not kept or soh is None or error is None:
        return WeekHealth(
            vin, week, soh, None, None, None, 0, None, nominal, source, odometer, None
        )
    raw = sum(v * w for v, w in kept) / sum(w for _, w in kept)
    half = rules.interval_z * math.hypot(error, rules.model_error)
    return WeekHealth(
        vin,
        week,
        soh,
        raw,
        soh - half,
        soh + half,
        len(kept),
        raw * nominal / 100.0,
        nominal,
        source,
        odometer,
        end_of_life(state, rules),
    )


def _last_odometer(state: HealthState) -> float | None:
    for entry in reversed(state.history):
        if entry[3] is not None:
            return entry[3]
    return None


def _kept(values: Measured, reference: float | None, rules: HealthRules) -> Measured:
    """The sessions left after the outlier rules: further than `outlier_points` from the
    reference (the VIN's recent weeks), or (three or more in the week) further than
    `outlier_mad` robust deviations from the week's median."""
    if reference is not None:
        values = [(v, w) for v, w in values if abs(v - reference) <= rules.outlier_points]
    if len(values) >= 3:
        centre = sorted(v for v, _ in values)[len(values) // 2]
        mad = sorted(abs(v - centre) for v, _ in values)[len(values) // 2]
        spread = max(1.4826 * mad, 0.5)
        values = [(v, w) for v, w in values if abs(v - centre) <= rules.outlier_mad * spread]
    return values


def monotone_end(history: list[Estimate], smoothing_weeks: int) -> tuple[float, float]:
    """The VIN's SoH at its newest week and the estimate's standard error.

    Each week's estimate is first averaged with the weeks before it (weighted, over
    `smoothing_weeks`); the non-increasing isotonic fit (pool adjacent violators,
    weighted) of those averages is then read at the newest week. The error is the
    weekly estimates' spread around the averages over the root of the newest average's
    weight, in units of a mean week."""
    smoothed: list[tuple[float, float]] = []  # (average, weight)
    for index in range(len(history)):
        window = history[max(0, index - smoothing_weeks + 1) : index + 1]
        weight = sum(entry[2] for entry in window)
        smoothed.append((sum(entry[1] * entry[2] for entry in window) / weight, weight))
    blocks: list[list[float]] = []  # [weighted mean, weight]
    for value, weight in smoothed:
        blocks.append([value, weight])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            top = blocks.pop()
            below = blocks[-1]
            total = below[1] + top[1]
            below[0] = (below[0] * below[1] + top[0] * top[1]) / total
            below[1] = total
    total = sum(entry[2] for entry in history)
    mean_weight = total / len(history)
    if len(history) > 1:
        variance = (
            sum(
                (entry[1] - average) ** 2 * entry[2]
                for entry, (average, _) in zip(history, smoothed, strict=True)
            )
            / total
        )
    else:
        variance = 1.0
    error = math.sqrt(max(variance, 0.04) * mean_weight / smoothed[-1][1])
    return blocks[-1][0], error


def end_of_life(state: HealthState, rules: HealthRules) -> dict[str, Any] | None:
    """The projected end of life from the fitted fade, once there are enough weeks."""
    history = [(w, raw, weight, odo) for w, raw, weight, odo in state.history if odo is not None]
    if len(history) < rules.eol_min_weeks:
        return None
    first_ms, first_km = history[0][0], history[0][3]
    days = [(e[0] - first_ms) / DAY_MS for e in history]
    km = [e[3] - first_km for e in history]
    soh = [e[1] for e in history]
    weights = [e[2] for e in history]
    fits = fade.fit_profile(days, km, soh, weights)
    if not fits:
        return None
    best = fits[0]
    horizon = days[-1] + rules.eol_horizon_years * 365.25
    threshold = rules.eol_soh
    central = fade.crossing(best, threshold, horizon)
    earliest = [fade.crossing(f, threshold, horizon, band=-fade.Z90) for f in fits]
    latest = [fade.crossing(f, threshold, horizon, band=fade.Z90) for f in fits]
    early = min((d for d in earliest if d is not None), default=None)
    late = None if None in latest else max(d for d in latest if d is not None)

    def date(days_after: float | None) -> str | None:
        if days_after is None:
            return None
        return format_ts(first_ms + max(days_after, days[-1]) * DAY_MS)[:10]

    odometer = None
    if central is not None:
        odometer = round(first_km + best.last_km + best.km_per_day * (central - days[-1]), 1)
    return {
        "threshold": threshold,
        "date": date(central),
        "date_lower": date(early),
        "date_upper": date(late),
        "odometer_km": odometer,
    }
