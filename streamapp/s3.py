"""The one way streamapp opens an S3 client (AWS, MinIO or moto), from the settings."""

from __future__ import annotations

from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from streamapp.settings import Settings


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Arguments of `session.client("s3", ...)`; secrets are unwrapped only here."""
    kwargs: dict[str, Any] = {
        "region_name": settings.s3_region,
        "config": Config(
            retries={"max_attempts": 1},
            connect_timeout=5,
            read_timeout=30,
            s3={"addressing_style": "path"},
        ),
    }
    if settings.s3_endpoint:
        kwargs["endpoint_url"] = settings.s3_endpoint
    if settings.s3_key is not None and settings.s3_secret is not None:
        kwargs["aws_access_key_id"] = settings.s3_key.get_secret_value()
        kwargs["aws_secret_access_key"] = settings.s3_secret.get_secret_value()
    return kwargs


def client(settings: Settings) -> Any:
    """An async context manager yielding an aiobotocore S3 client."""
    return aioboto3.Session().client("s3", **client_kwargs(settings))


async def ensure_bucket(settings: Settings) -> bool:
    """Create the archive bucket unless it exists; True when it was created."""
    async with client(settings) as s3:
        try:
            await s3.head_bucket(Bucket=settings.s3_bucket)
            return False
        except ClientError:
            await s3.create_bucket(Bucket=settings.s3_bucket)
            return True
