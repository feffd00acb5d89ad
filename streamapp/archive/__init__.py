"""Lossless, exactly-once S3 archive: Kafka -> memory buffer -> S3 temp -> S3 compressed."""
