"""streamapp: predictive maintenance of fleets as a Faust stream-processing application.

The package layout is the architecture (README.md, Architecture): one folder per concept
(`ingest`, `archive`, `features`, `rul`, `assets`, `web`), the message formats in
`contracts`, and `runtime` as the only place that touches Faust's and aiokafka's internals.
"""
