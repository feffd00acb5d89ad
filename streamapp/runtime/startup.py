"""A starting worker waits for its brokers instead of crashing.

aiokafka gives up at once with "Unable to bootstrap" when no broker answers, and Faust
then stops the worker: starting workers before the brokers (docker-compose, a broker
restart during a deploy) would need a supervisor to retry. The worker instead retries
every `RETRY_S` and logs each wait, up to `KAFKA_STARTUP_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError

from streamapp.runtime.config import aiokafka_kwargs
from streamapp.settings import Settings

logger = logging.getLogger(__name__)

RETRY_S = 2.0


class BrokersUnreachable(RuntimeError):
    """No broker answered within the startup timeout."""


async def wait_for_brokers(settings: Settings) -> None:
    """Return once a bootstrap server answers; raise `BrokersUnreachable` after the timeout
    (`KAFKA_STARTUP_TIMEOUT_S`; 0 waits forever)."""
    timeout_s = settings.kafka_startup_timeout_s
    started = time.monotonic()
    attempt = 0
    while True:
        client = AIOKafkaClient(**aiokafka_kwargs(settings))
        try:
            await client.bootstrap()
            if attempt:
                logger.info("event=brokers_reachable after_s=%.1f", time.monotonic() - started)
            return
        except KafkaConnectionError as exc:
            waited = time.monotonic() - started
            if timeout_s and waited >= timeout_s:
                raise BrokersUnreachable(
                    f"no Kafka broker answered at {settings.kafka_bootstrap_servers} "
                    f"within {timeout_s:.0f} s (KAFKA_STARTUP_TIMEOUT_S): {exc}"
                ) from exc
            attempt += 1
            logger.warning(
                "event=waiting_for_brokers servers=%s waited_s=%.0f retry_s=%.0f",
                settings.kafka_bootstrap_servers,
                waited,
                RETRY_S,
            )
        finally:
            await client.close()
        await asyncio.sleep(RETRY_S)
