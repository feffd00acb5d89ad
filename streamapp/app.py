"""The Faust application: `faust -A streamapp.app worker -l info`.

Agents stay thin: each concept's `agent.py` registers its agents on this app and
calls pure logic that is tested without a broker. The worker's `app` is created on
first use, so the benchmarks and tests can import `create_app` without building it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import faust

from streamapp.native_heap import limit_malloc_arenas, trim_native_heap
from streamapp.runtime import consumer, topics
from streamapp.runtime.assignor import ActiveFirstAssignor
from streamapp.runtime.config import faust_client_options, faust_credentials
from streamapp.runtime.quirks import quirks_for
from streamapp.runtime.recovery import table_manager
from streamapp.runtime.startup import wait_for_brokers
from streamapp.runtime.store import store_url
from streamapp.settings import Settings, get_settings
from streamapp.web.errors import json_errors

logger = logging.getLogger(__name__)


class StreamApp(faust.App):
    """Faust's app: before its producer and consumer start it waits for the brokers and
    creates any missing topic it reads or writes (`topics.ensure_topics`)."""

    def __init__(self, settings: Settings, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.streamapp_settings = settings

    async def on_first_start(self) -> None:
        settings = self.streamapp_settings
        await wait_for_brokers(settings)
        for name in await topics.ensure_topics(settings, topics.worker_specs(settings)):
            logger.info("event=topic_created topic=%s", name)
        await super().on_first_start()


def create_app(settings: Settings, agents: bool = True) -> faust.App:
    """Build the Faust app with settings suited to both the embedded broker and Kafka.

    `agents=False` leaves out every agent and the web server: an in-process app
    configured like a worker, on which a benchmark registers the one agent it measures.
    """
    limit_malloc_arenas(settings.malloc_arena_max)  # before any thread allocates
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = StreamApp(
        settings,
        settings.kafka_group_id,
        **faust_client_options(settings),
        broker_credentials=faust_credentials(settings),
        store=store_url(settings),
        datadir=str(settings.data_dir / "faust"),
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_enabled=agents,
        web_in_thread=False,
        # Only the documented endpoints (streamapp/web/openapi.json): Faust's /router and
        # /table pages would serve table data and cluster topology to anyone.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_application_options={"middlewares": [json_errors]},
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.kafka_replication_factor,
        TableManager=table_manager(settings),
        PartitionAssignor=ActiveFirstAssignor,
        topic_allow_declare=True,
        consumer_auto_offset_reset=settings.auto_offset_reset,
        table_standby_replicas=1,
        table_cleanup_interval=timedelta(seconds=30),
        producer_max_request_size=settings.kafka_max_message_bytes + 64 * 1024,
        consumer_max_fetch_size=settings.kafka_max_message_bytes + 64 * 1024,
        autodiscover=False,
    )
    consumer.install(app, settings.kafka_fetch_max_wait_ms, quirks_for(settings))
    if settings.malloc_trim_interval > 0:

        @app.timer(settings.malloc_trim_interval)
        async def trim_heap() -> None:
            """Give memory freed after a burst back to the system (`native_heap`)."""
            trim_native_heap()

    if agents:
        from streamapp.agents import register_all

        register_all(app, settings)
    return app


def __getattr__(name: str) -> faust.App:
    """`streamapp.app.app`, the worker's app (what `faust -A streamapp.app` looks up)."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    created = globals()["app"] = create_app(get_settings())
    return created
