"""The embedded stack: Tansu broker + moto S3 server on loopback, for dev and tests."""
