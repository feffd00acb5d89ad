"""Registers every concept's agents on the app; the one place that lists them."""

from __future__ import annotations

import faust

from streamapp.settings import Settings


def register_all(app: faust.App, settings: Settings) -> None:
    """Attach the ingestion, archive, feature, battery and RUL agents and the web views."""
    from streamapp.archive import agent as archive_agent
    from streamapp.battery import agent as battery_agent
    from streamapp.features import agent as features_agent
    from streamapp.ingest import agent as ingest_agent
    from streamapp.observability import faust_metrics
    from streamapp.rul.serving import agent as rul_agent
    from streamapp.web import rul_api, views
    from streamapp.web.base import ApiView
    from streamapp.web.ratelimit import RateLimiter

    ingest_agent.register(app, settings)
    archive_agent.register(app, settings)
    features_agent.register(app, settings)
    battery_agent.register(app, settings)
    live_model = rul_agent.register(app, settings)
    base = ApiView.bound(settings, RateLimiter.from_settings(settings))
    views.register(app, settings, base)
    rul_api.register(app, settings, live_model, base)
    faust_metrics.register(app, settings)
