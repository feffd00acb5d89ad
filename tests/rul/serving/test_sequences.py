"""Per-asset sequence state of streaming RUL: offset guard, window de-duplication (pure)."""

from __future__ import annotations

from streamapp.rul.serving.sequences import AssetSequence, Outcome, apply, missing_features
from tests.contracts.feature_records import parsed


def test_missing_model_features_are_named() -> None:
    assert missing_features(parsed(1), ["s2_mean", "s4_mean", "s7_mean"]) == ["s4_mean", "s7_mean"]


def test_replayed_offsets_and_re_emitted_windows_apply_once() -> None:
    state = AssetSequence()
    assert apply(state, parsed(1), 10, None, 3) == Outcome.APPLIED
    assert apply(state, parsed(2), 11, None, 3) == Outcome.APPLIED
    assert apply(state, parsed(2), 11, None, 3) == Outcome.REPLAYED
    assert apply(state, parsed(1), 5, None, 3) == Outcome.REPLAYED
    assert apply(state, parsed(2), 12, None, 3) == Outcome.DUPLICATE_WINDOW
    assert state.names == ["s2_mean", "s3_mean"]
    assert state.rows.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    assert state.last_offset == 12


def test_only_the_last_capacity_rows_are_kept_with_model_features() -> None:
    state = AssetSequence()
    for step in range(1, 6):
        apply(state, parsed(step, float(step)), step, ["s2_mean"], 3)
    assert state.names == ["s2_mean"]
    assert state.rows.tolist() == [[3.0], [4.0], [5.0]]


def test_a_new_model_keeps_the_rows_that_hold_its_features() -> None:
    state = AssetSequence()
    apply(state, parsed(1, 1.0), 1, None, 30)
    apply(state, parsed(2, 2.0), 2, None, 30)
    apply(state, parsed(3, 3.0), 3, ["s3_mean"], 30)
    assert (state.names, state.rows.tolist()) == (["s3_mean"], [[2.0], [4.0], [6.0]])
    apply(state, parsed(4, 4.0), 4, ["s2_mean", "s3_mean"], 30)
    assert (state.names, state.rows.tolist()) == (["s2_mean", "s3_mean"], [[4.0, 8.0]])


def test_records_taken_without_a_model_keep_the_history_of_the_last_one() -> None:
    state = AssetSequence()
    apply(state, parsed(1, 1.0), 1, ["s3_mean"], 30)
    apply(state, parsed(2, 2.0), 2, None, 30)
    assert (state.names, state.rows.tolist()) == (["s3_mean"], [[2.0], [4.0]])
    apply(state, parsed(3, 3.0), 3, ["s3_mean"], 30)
    assert state.rows.tolist() == [[2.0], [4.0], [6.0]]


def test_state_round_trips_through_its_table_value() -> None:
    state = AssetSequence()
    apply(state, parsed(1), 1, None, 30)
    apply(state, parsed(2, 0.1), 2, None, 30)
    again = AssetSequence.from_bytes(state.to_bytes())
    assert again == state
    assert AssetSequence.from_bytes(None) == AssetSequence()
    empty = AssetSequence(names=["s2_mean"], last_offset=4)
    assert AssetSequence.from_bytes(empty.to_bytes()) == empty


def test_stored_emissions_round_trip_and_answer_replays_of_their_offsets() -> None:
    state = AssetSequence()
    apply(state, parsed(1), 7, None, 30)
    apply(state, parsed(2, 0.5), 9, None, 30)
    state.emitted = [(7, b'{"rul_prediction":1.5}'), (9, b"\x00raw bytes\xff")]
    again = AssetSequence.from_bytes(state.to_bytes())
    assert again == state
    assert again.rows.tolist() == [[1.0, 2.0], [0.5, 1.0]]
    assert again.emission(9) == b"\x00raw bytes\xff"
    assert again.emission(7) == b'{"rul_prediction":1.5}'
    assert again.emission(8) is None
