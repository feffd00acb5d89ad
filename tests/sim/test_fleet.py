"""The simulator: deterministic, degrading, with the requested share of bad messages."""

from __future__ import annotations

import itertools
import json

from streamapp.contracts.codec import Invalid
from streamapp.contracts.telemetry import Telemetry, validate_telemetry
from streamapp.sim.fleet import Simulation, messages


def take(sim: Simulation, count: int) -> list[tuple[bytes, bytes]]:
    return list(itertools.islice(messages(sim), count))


def test_same_seed_same_messages() -> None:
    assert take(Simulation(5, seed=7), 500) == take(Simulation(5, seed=7), 500)
    assert take(Simulation(5, seed=7), 500) != take(Simulation(5, seed=8), 500)
    assert take(Simulation(3, "ev", seed=1), 300) == take(Simulation(3, "ev", seed=1), 300)


def test_engines_degrade_until_failure_then_restart() -> None:
    records = [json.loads(value) for _, value in take(Simulation(1, seed=3), 800)]
    cycles = [r["cycle"] for r in records]
    restart = cycles.index(1, 1)
    life = records[:restart]
    early = sum(r["signals"]["s4"] for r in life[:20]) / 20
    late = sum(r["signals"]["s4"] for r in life[-20:]) / 20
    assert late - early > 20
    assert cycles[restart - 1] == restart


def test_every_valid_message_passes_the_validator() -> None:
    for kind in ("engine", "ev"):
        for key, value in take(Simulation(4, kind, seed=2), 400):
            assert isinstance(validate_telemetry(value, key), Telemetry)


def test_invalid_fraction_produces_refused_messages() -> None:
    results = [
        validate_telemetry(v, k)
        for k, v in take(Simulation(10, seed=5, invalid_fraction=0.2), 2000)
    ]
    share = sum(isinstance(r, Invalid) for r in results) / len(results)
    assert 0.15 < share < 0.25


def test_multi_regime_engines_change_operating_settings() -> None:
    records = [json.loads(v) for _, v in take(Simulation(2, seed=4, regimes=3), 300)]
    assert len({round(r["signals"]["op1"]) for r in records}) == 3


def test_a_replaced_engine_is_a_new_asset_whose_cycles_only_grow() -> None:
    sim = Simulation(3, seed=4)
    last_cycle: dict[str, int] = {}
    for _, value in itertools.islice(messages(sim), 3 * 800):
        record = json.loads(value)
        asset, cycle = record["asset_id"], record["cycle"]
        assert cycle == last_cycle.get(asset, 0) + 1, (asset, cycle)
        last_cycle[asset] = cycle
    replacements = [asset for asset in last_cycle if "-R" in asset]
    assert replacements, "every engine lives 128-362 cycles: 800 cycles see replacements"
    assert all(last_cycle[asset.split("-R")[0]] <= 362 for asset in replacements)


def kurtosis(values: list[float]) -> float:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return sum((v - mean) ** 4 for v in values) / len(values) / var**2


def test_a_pump_wears_to_failure_then_is_replaced() -> None:
    """One pump's vibration: RMS or kurtosis higher near failure, then a new asset."""
    by_asset: dict[str, list[float]] = {}
    for _, value in take(Simulation(1, "rotating", seed=4), 16_000):
        record = json.loads(value)
        by_asset.setdefault(record["asset_id"], []).append(record["signals"]["vibration"])
    assert list(by_asset)[:2] == ["PUMP-0001", "PUMP-0001-R1"]
    life = by_asset["PUMP-0001"]
    assert 1800 <= len(life) <= 7200
    early, late = life[:600], life[-600:]
    rms = [(sum(v * v for v in part) / len(part)) ** 0.5 for part in (early, late)]
    assert rms[1] > 1.1 * rms[0] or kurtosis(late) > kurtosis(early) + 1.0


def test_a_mixed_fleet_interleaves_engines_pumps_and_vehicles() -> None:
    ids = [json.loads(value)["asset_id"] for _, value in take(Simulation(6, "mixed"), 6)]
    assert [i.split("-")[0][:6] for i in ids] == [
        "ENGINE",
        "PUMP",
        "5YJ3E1",
        "ENGINE",
        "PUMP",
        "5YJ3E1",
    ]
    for key, value in take(Simulation(6, "mixed", seed=2), 600):
        assert isinstance(validate_telemetry(value, key), Telemetry)


def test_run_to_failure_ends_each_life_at_its_failure() -> None:
    sim = Simulation(3, "rotating", seed=5, run_to_failure=True)
    records = [json.loads(value) for _, value in messages(sim)]  # finite
    ids = {record["asset_id"] for record in records}
    assert ids == {"PUMP-0001", "PUMP-0002", "PUMP-0003"}  # no replacement
    per_asset = {i: sum(r["asset_id"] == i for r in records) for i in ids}
    assert all(1800 <= count <= 7200 for count in per_asset.values())
