"""Message contracts and their codecs: telemetry, Tesla records, extracted features,
predictions, dead letters. Pure: no Kafka, no Faust; every concept reads them from here."""
