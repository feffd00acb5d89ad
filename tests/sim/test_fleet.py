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
