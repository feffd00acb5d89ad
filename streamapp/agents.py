"""Registers every concept's agents on the app; the one place that lists them."""

from __future__ import annotations

import faust

from streamapp.settings import Settings


def register_all(app: faust.App, settings: Settings) -> None:
    """Attach the ingestion, archive, feature and RUL agents and the web views."""
    from streamapp.ingest import agent as ingest_agent
    from streamapp.web import views

    ingest_agent.register(app, settings)
    views.register(app, settings)
