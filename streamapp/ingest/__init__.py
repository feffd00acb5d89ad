"""Ingestion agents: `telemetry` validated, `tesla_V` normalised (contracts in
`streamapp.contracts`), refusals dead-lettered."""
