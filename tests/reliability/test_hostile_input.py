"""Hostile input on every input topic, mixed with valid traffic, through one real worker.

Every bad message must land in its topic's dead-letter queue, byte for byte, with a
reason; the worker must never restart; and what the valid traffic produces (feature
windows, predictions) must equal what a fault-free pipeline computes offline.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import replace

import pytest

from streamapp.contracts.deadletter import REASON_HEADER, SOURCE_OFFSET_HEADER, parse_headers
from streamapp.rul.training.artifacts import load_active
from tests.conftest import settings_from_env
from tests.reliability import corpus
from tests.reliability.pipeline import MODELS, PIPELINE_ENV, Emitted, Expected
from tests.reliability.traffic import Collected, collect, produce

pytestmark = pytest.mark.integration

PER_TOPIC = 10_000
BAD_PER_TOPIC = 2_500
HOSTILE_ENV = {**PIPELINE_ENV, "WINDOW_KIND": "tumbling", "WINDOW_SIZE": "5"}


def is_agent_letter(key: bytes | None) -> bool:
    """A features dead letter from the feature agent (keyed by a valid VIN), not the corpus."""
    return bool(key) and key.startswith(corpus.VALID_VIN_PREFIX.encode())


def test_corpus_has_at_least_fifteen_kinds_per_input_topic_family() -> None:
    kinds = {*corpus.TELEMETRY_KINDS, *corpus.TESLA_KINDS, *corpus.FEATURES_KINDS}
    assert len(corpus.TELEMETRY_KINDS) >= 15 and len(kinds) >= 30
    assert load_active(MODELS / "turbofan").feature_names == corpus.MODEL_FEATURES


def test_hostile_input_is_dead_lettered_and_changes_no_valid_output(
    isolated_env: dict[str, str], start_worker
) -> None:
    env = {**isolated_env, **HOSTILE_ENV}
    settings = settings_from_env(env)
    valid = PER_TOPIC - BAD_PER_TOPIC
    bad = {
        settings.topic_telemetry: corpus.bad_messages(corpus.TELEMETRY_KINDS, BAD_PER_TOPIC, 1),
        settings.topic_tesla: corpus.bad_messages(corpus.TESLA_KINDS, BAD_PER_TOPIC, 2),
        settings.topic_features: corpus.bad_messages(corpus.FEATURES_KINDS, BAD_PER_TOPIC, 3),
    }
    good = {
        settings.topic_telemetry: corpus.valid_telemetry(75, valid, seed=4),
        settings.topic_tesla: corpus.valid_tesla(40, valid, seed=5),
        settings.topic_features: corpus.valid_features(30, valid, seed=6),
    }
    traffic = {topic: corpus.mix(good[topic], bad[topic], seed=7) for topic in bad}
    expected = Expected.of(settings, good[settings.topic_telemetry], good[settings.topic_tesla])
    unpredictable = sorted(
        key for key, record in expected.windows.items() if "s2_mean" not in record["features"]
    )
    assert unpredictable and len(unpredictable) < len(expected.windows)
    # Each valid upstream features record is predicted too; Tesla windows lack the features.
    expected = replace(expected, predictions=valid + len(expected.windows) - len(unpredictable))

    worker = start_worker(env)
    worker.wait_ready()
    pid = worker.process.pid

    async def send_all() -> list[int]:
        return await asyncio.gather(
            *(produce(settings, topic, messages) for topic, messages in traffic.items())
        )

    assert asyncio.run(send_all()) == [PER_TOPIC] * 3

    dlq = {topic: settings.dlq_topic(topic) for topic in traffic}
    want_letters = {
        dlq[settings.topic_telemetry]: BAD_PER_TOPIC,
        dlq[settings.topic_tesla]: BAD_PER_TOPIC,
        dlq[settings.topic_features]: BAD_PER_TOPIC + len(unpredictable),
    }

    def complete(found: Collected) -> bool:
        return all(len(found.records[t]) >= n for t, n in want_letters.items()) and Emitted.read(
            settings, found
        ).reached(expected)

    found = asyncio.run(
        collect(
            settings,
            [*want_letters, settings.topic_features, settings.topic_predictions],
            complete,
            timeout_s=240,
        )
    )

    # Every bad message is in its DLQ, untouched, with a reason and its source offset.
    reasons: Counter[str] = Counter()
    for topic, messages in bad.items():
        letters = [r for r in found.records[dlq[topic]] if not is_agent_letter(r.key)]
        # Empty and missing keys or values are compared alike: brokers differ there.
        sent = Counter((m.key or None, m.value or None) for m in messages)
        got = Counter((r.key or None, r.value or None) for r in letters)
        assert got == sent, f"{topic}: {sum((sent - got).values())} bad messages not dead-lettered"
        for letter in letters:
            headers = parse_headers(list(letter.headers))
            assert headers[REASON_HEADER], letter
            assert int(headers[SOURCE_OFFSET_HEADER]) >= 0
            reasons[re.sub(r"\d+", "N", headers[REASON_HEADER].split(":")[0])[:40]] += 1

    # The only other dead letters: windows of Tesla VINs, which lack the model's features.
    feature_letters = found.records[dlq[settings.topic_features]]
    agent_letters = [r for r in feature_letters if is_agent_letter(r.key)]
    assert len(agent_letters) == len(unpredictable)
    for letter in agent_letters:
        assert parse_headers(list(letter.headers))[REASON_HEADER].startswith("missing features:")

    # The valid traffic's output is the fault-free one.
    Emitted.read(settings, found).check(expected)

    # One worker process from start to end, and no agent crashed inside it.
    assert worker.alive() and worker.process.pid == pid
    log = worker.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "crashed" not in log.lower(), worker.log_tail()
    print(f"\nhostile input: {sum(reasons.values())} dead letters, {len(reasons)} reasons:")
    for reason, count in reasons.most_common():
        print(f"  {count:5d}  {reason}")


def test_a_dead_letter_too_large_to_copy_is_kept_without_its_value(
    isolated_env: dict[str, str], start_worker
) -> None:
    """A broker may accept bigger records than the workers may produce: no crash loop."""
    env = {**isolated_env, "KAFKA_MAX_MESSAGE_BYTES": str(64 * 1024)}
    settings = settings_from_env(env)
    worker = start_worker(env)
    worker.wait_ready()
    big = corpus.Message("oversized", b"BIG-1", b"{" + b" " * (300 * 1024) + b"}")
    after = corpus.Message("nan_literal", b"BIG-2", b'{"asset_id":"BIG-2","signals":NaN}')
    asyncio.run(produce(settings, settings.topic_telemetry, [big, after]))
    dlq = settings.dlq_topic(settings.topic_telemetry)
    found = asyncio.run(collect(settings, [dlq], lambda f: len(f.records[dlq]) >= 2, 90))
    letters = {letter.key: letter for letter in found.records[dlq]}
    assert set(letters) == {b"BIG-1", b"BIG-2"} and len(found.records[dlq]) == 2
    reason = parse_headers(list(letters[b"BIG-1"].headers))[REASON_HEADER]
    assert not letters[b"BIG-1"].value
    assert reason.startswith("asset_id must be a non-empty string"), reason
    assert "not copied" in reason and "source topic/partition/offset" in reason
    assert letters[b"BIG-2"].value == after.value
    assert worker.alive()
    log = worker.log_path.read_text(errors="replace")
    assert "dead letter too large" in log and "Crashed" not in log
