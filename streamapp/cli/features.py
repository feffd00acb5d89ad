"""Feature commands: `bench_features` (named `features` on the `bench` group)."""

from __future__ import annotations

from streamapp.cli.options import message_bench

bench_features = message_bench(
    "features",
    200_000,
    "Feature-extraction throughput vs plain aiokafka on a private embedded broker.",
    "streamapp.features.bench:bench_features",
)
