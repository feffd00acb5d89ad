"""Training jobs: request validation, the command line, and a real tiny job run to the end."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from streamapp.contracts.codec import Invalid
from streamapp.dev.processes import free_port
from streamapp.dev.stack import DEV_REGION, DEV_S3_KEY, DEV_S3_SECRET
from streamapp.rul.training.artifacts import active_version, list_versions
from streamapp.rul.training.jobs import (
    DataUnavailable,
    JobBusy,
    StorageUnavailable,
    TrainJobs,
    TrainRequest,
    check_data,
    folder_writable,
    log_tail,
    parse_train_request,
    split_s3,
    train_argv,
)
from streamapp.rul.training.train import TrainConfig
from streamapp.settings import Settings
from tests.rul.synthetic import write_cmapss


def test_a_minimal_request_keeps_the_train_defaults() -> None:
    request = parse_train_request({"data": "/data/cmapss"})
    assert request == TrainRequest("/data/cmapss")
    assert (request.epochs, request.window, request.activate) == (30, 30, False)
    assert request.models == TrainConfig.models == ("lstm", "gru", "tcn", "cnn")
    assert not request.from_s3


def test_every_field_is_checked() -> None:
    full = parse_train_request(
        {"data": "s3://bucket/datasets/fd001", "format": "features", "subset": "fd002",
         "models": " gru , tcn", "epochs": 3, "window": 10, "seed": 7, "activate": True,
         "asset_class": "rotating"}
    )  # fmt: skip
    assert full == TrainRequest(
        "s3://bucket/datasets/fd001", "features", "FD002", ("gru", "tcn"), 3, 10, 7, True,
        "rotating",
    )  # fmt: skip
    assert full.from_s3 and split_s3(full.data) == ("bucket", "datasets/fd001")
    refused = {
        "x": "body must be a JSON object",
        "{}": "data must be",
        '{"data": "s3:///x"}': "needs a bucket",
        '{"data": "d", "format": "csv"}': "format must be",
        '{"data": "d", "models": ["svm"]}': "models must be",
        '{"data": "d", "epochs": 0}': "epochs must be",
        '{"data": "d", "epochs": true}': "epochs must be",
        '{"data": "d", "window": "30"}': "window must be",
        '{"data": "d", "activate": "yes"}': "activate must be",
        '{"data": "d", "subset": "../x"}': "subset must be",
        '{"data": "d", "subset": "FD\u00e901"}': "subset must be",
        '{"data": "d", "models": "gru,,tcn"}': "models must be",
        '{"data": "d", "models": "gru\\u001c"}': "models must be",
        '{"data": "d", "command": "rm"}': "unknown fields: command",
        '{"data": "d", "format": "features"}': "asset_class is required",
        '{"data": "d", "asset_class": "../x"}': "asset_class must be",
    }
    for body, reason in refused.items():
        result = parse_train_request(json.loads(body) if body != "x" else body)
        assert isinstance(result, Invalid) and reason in result.reason, body


def test_the_job_runs_the_train_command_with_the_request_s_options(tmp_path: Path) -> None:
    request = TrainRequest("d", models=("gru",), epochs=2, window=10, seed=3)
    argv = train_argv(request, tmp_path / "data", tmp_path / "models", 1)
    assert argv[:4] == [sys.executable, "-m", "streamapp", "train"]
    options = dict(zip(argv[4:-1:2], argv[5:-1:2], strict=True))
    assert options == {
        "--data": str(tmp_path / "data"), "--format": "cmapss", "--subset": "FD001",
        "--models": "gru", "--epochs": "2", "--window": "10", "--seed": "3",
        "--out": str(tmp_path / "models"), "--threads": "1", "--jobs": "1",
        "--asset-class": "turbofan",
    }  # fmt: skip
    assert argv[-1] == "--no-activate"


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    assert log_tail(log) == ""
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, 3) == "line 97\nline 98\nline 99"


def test_a_tiny_job_trains_a_new_version_and_a_second_job_waits(tmp_path: Path) -> None:
    data = write_cmapss(tmp_path / "data", n_train=8)
    settings = Settings(
        models_dir=tmp_path / "models", data_dir=tmp_path / "state", torch_threads=1
    )

    async def scenario() -> tuple:
        jobs = TrainJobs(settings)
        job = jobs.start(TrainRequest(str(data), models=("tcn",), epochs=1, window=5))
        with pytest.raises(JobBusy):
            jobs.start(TrainRequest(str(data)))
        missing = None
        for _ in range(1200):
            if job.done:
                break
            await asyncio.sleep(0.1)
        if job.done:
            missing = jobs.start(TrainRequest(str(tmp_path / "nowhere")))
            while not missing.done:
                await asyncio.sleep(0.05)
        await jobs.stop()
        return job, missing

    job, missing = asyncio.run(scenario())
    shown = job.to_json()
    assert shown["status"] == "succeeded", shown["log_tail"]
    assert shown["exit_code"] == 0
    assert shown["model_versions"] == list_versions(settings.models_dir / "turbofan")
    assert shown["asset_class"] == "turbofan"
    assert len(shown["model_versions"]) == 1
    assert "saved" in shown["log_tail"] and "not activated" in shown["log_tail"]
    assert active_version(settings.models_dir / "turbofan") is None
    assert missing.to_json()["status"] == "failed"
    assert "no such dataset path" in missing.to_json()["log_tail"]


def test_a_job_s_local_data_must_exist_before_it_starts(tmp_path: Path) -> None:
    settings = Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "state")
    asyncio.run(check_data(settings, TrainRequest(str(tmp_path))))
    for data, reason in (
        (str(tmp_path / "nowhere"), "no such dataset path"),
        ("a\x00b", "no such dataset path"),  # a NUL byte
        ("x" * 5000, "not a usable path"),  # File name too long
    ):
        with pytest.raises(DataUnavailable, match=reason):
            asyncio.run(check_data(settings, TrainRequest(data)))
    assert folder_writable(tmp_path / "models" / "not" / "yet")  # created by the job


@pytest.mark.integration
def test_a_job_s_s3_data_is_listed_before_it_starts(s3_server: str, tmp_path: Path) -> None:
    from streamapp import s3

    settings = Settings(
        s3_endpoint=s3_server, s3_key=DEV_S3_KEY, s3_secret=DEV_S3_SECRET, s3_region=DEV_REGION,
        s3_bucket=f"jobs-{tmp_path.name[-8:].lower().replace('_', '-')}",
    )  # fmt: skip
    bucket = settings.s3_bucket

    async def scenario() -> None:
        await s3.ensure_bucket(settings)
        async with s3.client(settings) as client:
            await client.put_object(Bucket=bucket, Key="datasets/a/train_FD001.txt", Body=b"1")
        await check_data(settings, TrainRequest(f"s3://{bucket}/datasets/a"))
        for data, reason in (
            (f"s3://{bucket}/datasets/none", "no objects under"),
            ("s3://no-such-bucket-5e1f/x", "no bucket"),
            ("s3://Bad_Bucket!/x", "not a valid S3 location"),
        ):
            with pytest.raises(DataUnavailable, match=reason):
                await check_data(settings, TrainRequest(data))
        unreachable = settings.model_copy(update={"s3_endpoint": f"http://127.0.0.1:{free_port()}"})
        with pytest.raises(StorageUnavailable, match="S3 unreachable"):
            await check_data(unreachable, TrainRequest(f"s3://{bucket}/datasets/a"))

    asyncio.run(scenario())
