"""Model versions in S3 (`MODELS_URL=s3://bucket/prefix`), for workers on several machines.

The bucket holds the same layout as a models folder: `<prefix>/<class>/<version>/<file>`
and `<prefix>/<class>/ACTIVE`. It is the truth; each worker's `MODELS_DIR` is its local
mirror, which `sync` brings up to date every few seconds: a class's active version is
downloaded (into a temporary folder, renamed when complete, so a half-copied version is
never loaded) and its local ACTIVE rewritten. The worker's live models then load it
from the mirror exactly as from a local folder, checksums verified. Activating a version
(CLI or HTTP) verifies it in the mirror, then rewrites the bucket's ACTIVE; every worker
follows within one sync.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from streamapp import s3
from streamapp.rul.training.artifacts import (
    ACTIVE,
    MANIFEST,
    UnknownVersion,
    active_version,
    check_version_name,
    class_folder,
    list_versions,
    load_ensemble,
    model_classes,
    only_class,
)
from streamapp.settings import Settings

log = logging.getLogger(__name__)
SCHEME = "s3://"


def model_bucket(settings: Settings) -> ModelBucket | None:
    """The bucket MODELS_URL names, None when models live in MODELS_DIR alone."""
    return ModelBucket.from_url(settings.models_url, settings) if settings.models_url else None


@dataclass(frozen=True, slots=True)
class ModelBucket:
    """The models under one S3 prefix, and the S3 settings to reach them."""

    settings: Settings
    bucket: str
    prefix: str

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> ModelBucket:
        """`s3://bucket/prefix` (the prefix may be empty); ValueError otherwise."""
        if not url.startswith(SCHEME) or not url[len(SCHEME) :].split("/", 1)[0]:
            raise ValueError(f"MODELS_URL must be s3://bucket/prefix, not {url!r}")
        bucket, _, prefix = url[len(SCHEME) :].partition("/")
        return cls(settings, bucket, prefix.strip("/"))

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{SCHEME}{self.bucket}"

    def key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    async def active(self, asset_class: str) -> str | None:
        """The class's active version in the bucket, None when it has none."""
        async with s3.client(self.settings) as client:
            return await self._active(client, asset_class)

    async def _active(self, client: Any, asset_class: str) -> str | None:
        try:
            response = await client.get_object(
                Bucket=self.bucket, Key=self.key(asset_class, ACTIVE)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        async with response["Body"] as body:
            name = (await body.read()).decode("utf-8", "replace").strip()
        return name or None

    async def layout(self) -> dict[str, list[str]]:
        """Every class in the bucket and its versions (those with a manifest), sorted."""
        found: dict[str, set[str]] = {}
        async with s3.client(self.settings) as client:
            paginator = client.get_paginator("list_objects_v2")
            prefix = self.key("") + "/" if self.prefix else ""
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    parts = item["Key"][len(prefix) :].split("/")
                    if len(parts) == 3 and parts[2] == MANIFEST:
                        found.setdefault(parts[0], set()).add(parts[1])
                    elif len(parts) == 2 and parts[1] == ACTIVE:
                        found.setdefault(parts[0], set())
        return {name: sorted(versions) for name, versions in sorted(found.items())}

    async def class_of_version(self, version: str) -> str:
        """The one class of the bucket holding `version` (as `artifacts.class_of_version`)."""
        check_version_name(version)
        holding = [name for name, versions in (await self.layout()).items() if version in versions]
        return only_class(version, holding, self.url)

    async def upload(self, models_dir: Path, asset_class: str, version: str) -> bool:
        """Copy one local version to the bucket (manifest last, so a listing never sees a
        half-uploaded version); False when the bucket already has it."""
        folder = class_folder(models_dir, asset_class) / version
        check_version_name(version)
        async with s3.client(self.settings) as client:
            manifest_key = self.key(asset_class, version, MANIFEST)
            listed = await client.list_objects_v2(Bucket=self.bucket, Prefix=manifest_key)
            if listed.get("Contents"):
                return False
            files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
            for path in [*files, folder / MANIFEST]:
                await client.put_object(
                    Bucket=self.bucket,
                    Key=self.key(asset_class, version, path.name),
                    Body=path.read_bytes(),
                )
        return True

    async def set_active(self, asset_class: str, version: str) -> None:
        async with s3.client(self.settings) as client:
            await client.put_object(
                Bucket=self.bucket,
                Key=self.key(asset_class, ACTIVE),
                Body=f"{version}\n".encode(),
            )

    async def download(self, models_dir: Path, asset_class: str, version: str) -> Path:
        """The version in the local mirror, downloaded unless it is there already."""
        check_version_name(version)
        folder = class_folder(models_dir, asset_class)
        target = folder / version
        if (target / MANIFEST).is_file():
            return target
        prefix = self.key(asset_class, version) + "/"
        staging = folder / f".{version}.download"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        async with s3.client(self.settings) as client:
            listed = await client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
            keys = [item["Key"] for item in listed.get("Contents", [])]
            if not any(key.endswith("/" + MANIFEST) for key in keys):
                shutil.rmtree(staging, ignore_errors=True)
                raise UnknownVersion(f"no version {version} of class {asset_class} in {self.url}")
            for key in keys:
                name = key[len(prefix) :]
                if "/" in name or not name:
                    continue
                response = await client.get_object(Bucket=self.bucket, Key=key)
                async with response["Body"] as body:
                    (staging / name).write_bytes(await body.read())
        os.replace(staging, target)
        return target

    async def activate(self, models_dir: Path, asset_class: str, version: str) -> None:
        """Verify the version (downloaded into the mirror, every checksum checked), then
        point the bucket's ACTIVE at it; raises UnknownVersion or ArtifactError."""
        folder = await self.download(models_dir, asset_class, version)
        await asyncio.to_thread(load_ensemble, folder)
        await self.set_active(asset_class, version)
        await self.sync(models_dir, [asset_class])

    async def sync(self, models_dir: Path, classes: Iterable[str]) -> None:
        """Bring each class's active version and ACTIVE into the local mirror."""
        async with s3.client(self.settings) as client:
            actives = {name: await self._active(client, name) for name in classes}
        for name, version in actives.items():
            if version is None:
                continue
            await self.download(models_dir, name, version)
            folder = class_folder(models_dir, name)
            if active_version(folder) != version:
                tmp = folder / f".{ACTIVE}.tmp"
                tmp.write_text(f"{version}\n", encoding="utf-8")
                os.replace(tmp, folder / ACTIVE)
                log.info("event=model_synced asset_class=%s version=%s", name, version)

    async def publish(self, models_dir: Path) -> list[tuple[str, str]]:
        """Upload every local version the bucket lacks, and each class's local ACTIVE
        where the bucket has none yet; returns the (class, version) uploaded."""
        uploaded = []
        for name in model_classes(models_dir):
            folder = models_dir / name
            for version in list_versions(folder):
                if await self.upload(models_dir, name, version):
                    uploaded.append((name, version))
            local = active_version(folder)
            if local is not None and await self.active(name) is None:
                await self.set_active(name, local)
        return uploaded
