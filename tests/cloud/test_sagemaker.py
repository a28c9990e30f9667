"""SageMaker: request shapes (Stubber on real clients), data upload (moto S3), the entry point, collect + register."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from carmatch.cloud import sagemaker, sagemaker_images
from carmatch.cloud.sagemaker_network import NetworkPlan
from carmatch.errors import AwsError, InvalidInputError
from carmatch.runtime import Runtime
from carmatch.training import registry
from carmatch.training.data import read_pairs_jsonl
from carmatch.training.entry import main as training_main
from tests.training_support import fast_config, fill_with_cars

BUCKET = "carmatch-test-bucket"
ROLE = "arn:aws:iam::123456789012:role/carmatch-sagemaker"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """(sagemaker client wrapped by Stubber, moto-backed s3 client with the bucket created)."""
    for var, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(var, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        sm = boto3.client("sagemaker", region_name="us-east-1")
        yield sm, s3


def _describe(name: str, status: str, secondary: str, billable: int | None = None, **extra: Any) -> dict[str, Any]:
    response: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/carmatch/jobs/{name}/output/{name}/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "CreationTime": datetime(2025, 1, 1, tzinfo=timezone.utc),
        **extra,
    }
    if billable is not None:
        response["BillableTimeInSeconds"] = billable
    return response


def test_training_image_matches_region_and_instance() -> None:
    assert sagemaker.training_image_uri("us-east-1", "ml.g5.xlarge") == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.10.0-gpu-py313-cu130-ubuntu22.04-sagemaker"
    )
    assert "2.10.0-cpu-py313-ubuntu22.04" in sagemaker.training_image_uri("eu-west-1", "ml.m5.xlarge")
    assert sagemaker.training_image_uri("ap-east-1", "ml.p3.2xlarge").startswith("871362719292.dkr.ecr.ap-east-1.")
    assert ".amazonaws.com.cn/" in sagemaker.training_image_uri("cn-north-1", "ml.g4dn.xlarge")


def test_source_dir_holds_carmatch_and_the_entry_point() -> None:
    with tarfile.open(fileobj=io.BytesIO(sagemaker.package_source()), mode="r:gz") as tar:
        names = set(tar.getnames())
        entry = tar.extractfile(sagemaker.ENTRY_POINT).read().decode()  # type: ignore[union-attr]
    assert {
        "carmatch/training/loop.py",
        "carmatch/training/config.py",
        "carmatch/training/data.py",
        "requirements.txt",
    } <= names
    assert "from carmatch.training.entry import main" in entry
    assert not any(n.startswith("carmatch/ui/") or "__pycache__" in n for n in names)


def test_submit_uploads_data_and_creates_the_job(runtime: Runtime, tmp_path: Path, aws: tuple[Any, Any]) -> None:
    sm, s3 = aws
    count = fill_with_cars(runtime, tmp_path / "cars", seeds=1)
    s3.put_object(Bucket=BUCKET, Key="carmatch/images/from-another-job.jpg", Body=b"an image of an earlier job")
    config = fast_config(runtime, epochs=3, batch_size=4)
    job = "carmatch/jobs/carmatch-job-1"
    channels = {  # the local base checkpoint travels in its own channel
        "training": f"s3://{BUCKET}/{job}/training/",
        "images": f"s3://{BUCKET}/{job}/images.manifest",  # this job's images only
        "base": f"s3://{BUCKET}/{job}/base/",
    }
    expected = {
        "TrainingJobName": "carmatch-job-1",
        "AlgorithmSpecification": {
            "TrainingImage": sagemaker.training_image_uri("us-east-1", "ml.g5.xlarge"),
            "TrainingInputMode": "File",
        },
        "RoleArn": ROLE,
        "HyperParameters": sagemaker.hyperparameters(
            config, f"s3://{BUCKET}/{job}/source/sourcedir.tar.gz", "us-east-1"
        ),
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "ManifestFile" if channel == "images" else "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel, uri in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/carmatch/jobs/carmatch-job-1/output/"},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "CheckpointConfig": {"S3Uri": f"s3://{BUCKET}/{job}/checkpoints/", "LocalPath": "/opt/ml/checkpoints"},
        "EnableManagedSpotTraining": False,
        "Tags": [{"Key": "app", "Value": "carmatch"}],
    }
    with Stubber(sm) as stub:
        stub.add_response(
            "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}, expected
        )
        name = sagemaker.submit_training(
            sm, s3, runtime.catalog, config, ROLE, BUCKET, "us-east-1", job_name="carmatch-job-1"
        )
        stub.assert_no_pending_responses()
    assert name == "carmatch-job-1"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert sum(k.startswith("carmatch/images/") for k in keys) == count + 1
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{job}/images.manifest")["Body"].read())
    assert manifest[0] == {"prefix": f"s3://{BUCKET}/carmatch/images/"}
    assert len(manifest) == count + 1 and "from-another-job.jpg" not in manifest
    assert {
        "carmatch/jobs/carmatch-job-1/training/pairs.jsonl",
        "carmatch/jobs/carmatch-job-1/training/tiny-clip.json",
        "carmatch/jobs/carmatch-job-1/source/sourcedir.tar.gz",
        "carmatch/jobs/carmatch-job-1/base/tiny-clip.pt",
    } <= keys
    lines = s3.get_object(Bucket=BUCKET, Key="carmatch/jobs/carmatch-job-1/training/pairs.jsonl")["Body"].read()
    records = [json.loads(line) for line in lines.decode().splitlines()]
    assert len(records) == count and all(not r["path"].startswith("/") for r in records)
    record = registry.get_model(runtime.catalog, name)
    assert (record.kind, record.status) == ("sagemaker", "submitted")

    # a second job uploads no image again (content-addressed keys)
    with Stubber(sm) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/y"})
        puts: list[str] = []
        s3.meta.events.register("provide-client-params.s3.PutObject", lambda params, **kw: puts.append(params["Key"]))
        sagemaker.submit_training(sm, s3, runtime.catalog, config, ROLE, BUCKET, "us-east-1", job_name="carmatch-job-2")
    assert not any(k.startswith("carmatch/images/") for k in puts)


def test_hyperparameters_are_json_strings_the_entry_point_reads(runtime: Runtime) -> None:
    hp = sagemaker.hyperparameters(fast_config(runtime, lr=3e-5), "s3://b/src.tar.gz", "us-east-1")
    assert all(isinstance(v, str) for v in hp.values())
    assert json.loads(hp["sagemaker_program"]) == "train_entry.py"
    assert json.loads(hp["model"]) == "tiny-clip.json" and json.loads(hp["pretrained"]) == "tiny-clip.pt"
    assert json.loads(hp["lr"]) == 3e-5 and json.loads(hp["batch-size"]) == 16 and "device" not in hp


def test_entry_point_trains_from_sagemaker_channels(
    runtime: Runtime, tmp_path: Path, tiny_model: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """carmatch.training.entry runs unchanged in the container: SM_CHANNEL_* in, SM_MODEL_DIR out."""
    fill_with_cars(runtime, tmp_path / "cars", seeds=2)
    from carmatch.training.data import catalog_pairs, write_pairs_jsonl

    pairs, _ = catalog_pairs(runtime.catalog, 0.2, 0.25)
    channel, base, model_dir = tmp_path / "training", tmp_path / "base", tmp_path / "model"
    write_pairs_jsonl(pairs, channel / "pairs.jsonl", relative_to=tmp_path / "cars")
    (channel / "tiny-clip.json").write_text(Path(tiny_model[0]).read_text())
    base.mkdir()
    (base / "tiny-clip.pt").write_bytes(Path(tiny_model[1]).read_bytes())
    monkeypatch.setenv("SM_CHANNEL_TRAINING", str(channel))
    monkeypatch.setenv("SM_CHANNEL_IMAGES", str(tmp_path / "cars"))
    monkeypatch.setenv("SM_CHANNEL_BASE", str(base))
    monkeypatch.setenv("SM_MODEL_DIR", str(model_dir))
    assert (
        training_main(
            [
                "--model",
                "tiny-clip.json",
                "--pretrained",
                "tiny-clip.pt",
                "--epochs",
                "1",
                "--batch_size",
                "8",
                "--val-fraction",
                "0.2",
                "--test-fraction",
                "0.25",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (model_dir / "best.pt").is_file() and not (model_dir / "last.pt").exists()
    summary = json.loads((model_dir / "summary.json").read_text())
    assert summary["config"]["epochs"] == 1 and summary["test_after"]["n_images"] >= 2
    assert len(read_pairs_jsonl(model_dir / "pairs.jsonl")) == len(pairs)


def test_a_restarted_job_resumes_from_the_checkpoint_folder_sagemaker_restores(
    runtime: Runtime,
    tmp_path: Path,
    tiny_model: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With CheckpointConfig the loop trains in /opt/ml/checkpoints; a spot restart finds last.pt there."""
    fill_with_cars(runtime, tmp_path / "cars", seeds=2)
    from carmatch.training.data import catalog_pairs, write_pairs_jsonl

    pairs, _ = catalog_pairs(runtime.catalog, 0.2, 0.25)
    channel, checkpoints, model_dir = tmp_path / "training", tmp_path / "checkpoints", tmp_path / "model"
    write_pairs_jsonl(pairs, channel / "pairs.jsonl", relative_to=tmp_path / "cars")
    (channel / "tiny-clip.json").write_text(Path(tiny_model[0]).read_text())
    monkeypatch.setenv("SM_CHANNEL_TRAINING", str(channel))
    monkeypatch.setenv("SM_CHANNEL_IMAGES", str(tmp_path / "cars"))
    monkeypatch.setenv("SM_MODEL_DIR", str(model_dir))
    argv = ["--model", "tiny-clip.json", "--pretrained", "none", "--epochs", "1", "--batch_size", "8"]
    argv += [
        "--val-fraction",
        "0.2",
        "--test-fraction",
        "0.25",
        "--device",
        "cpu",
        "--checkpoint-dir",
        str(checkpoints),
    ]
    assert training_main(argv) == 0
    assert (checkpoints / "last.pt").is_file()  # kept where SageMaker syncs it to S3
    assert (model_dir / "best.pt").is_file() and not (model_dir / "last.pt").exists()
    with caplog.at_level("INFO"):
        assert training_main(argv) == 0  # the job restarted: same folder, restored from S3
    assert "Resuming from" in caplog.text


def _model_tarball(tiny_model: tuple[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (
            ("best.pt", Path(tiny_model[1]).read_bytes()),
            (
                "summary.json",
                json.dumps({"test_before": {"t2i_r5": 0.3}, "test_after": {"t2i_r5": 0.8}, "best_epoch": 2}).encode(),
            ),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_collect_polls_downloads_and_registers_the_model(
    runtime: Runtime, car_folder: Path, tiny_model: tuple[str, str], aws: tuple[Any, Any]
) -> None:
    sm, s3 = aws
    runtime.ingestor().ingest_folder(car_folder)
    name = "carmatch-job-9"
    registry.register_model(runtime.catalog, name, "sagemaker", tiny_model[0], tiny_model[1], "submitted")
    s3.put_object(
        Bucket=BUCKET, Key=f"carmatch/jobs/{name}/output/{name}/output/model.tar.gz", Body=_model_tarball(tiny_model)
    )
    seen: list[sagemaker.JobStatus] = []
    with Stubber(sm) as stub:
        stub.add_response("describe_training_job", _describe(name, "InProgress", "Starting"), {"TrainingJobName": name})
        stub.add_response("describe_training_job", _describe(name, "InProgress", "Training", 120))
        stub.add_response("describe_training_job", _describe(name, "Completed", "Completed", 640))
        record = sagemaker.collect_job(
            sm, s3, runtime.catalog, runtime.settings.runs_dir, name, seen.append, sleep=lambda s: None
        )
        stub.assert_no_pending_responses()
    assert [(s.status, s.secondary, s.billable_seconds) for s in seen] == [
        ("InProgress", "Starting", 0),
        ("InProgress", "Training", 120),
        ("Completed", "Completed", 640),
    ]
    assert record.status == "ready" and record.metrics["billable_seconds"] == 640
    assert record.metrics["test_after"] == {"t2i_r5": 0.8}
    assert registry.activate(runtime, name).rebuilt  # usable like a local run


def test_a_corrupt_model_tarball_is_refused_and_leaves_the_earlier_download(
    runtime: Runtime, tiny_model: tuple[str, str], aws: tuple[Any, Any]
) -> None:
    sm, s3 = aws
    name = "carmatch-job-8"
    registry.register_model(runtime.catalog, name, "sagemaker", tiny_model[0], tiny_model[1], "submitted")
    earlier = runtime.settings.runs_dir / name / "best.pt"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"an earlier download")
    whole = _model_tarball(tiny_model)
    s3.put_object(Bucket=BUCKET, Key=f"carmatch/jobs/{name}/output/{name}/output/model.tar.gz", Body=whole[:-300])
    with Stubber(sm) as stub:
        stub.add_response("describe_training_job", _describe(name, "Completed", "Completed", 640))
        with pytest.raises(InvalidInputError, match="corrupt or truncated"):
            sagemaker.collect_job(sm, s3, runtime.catalog, runtime.settings.runs_dir, name, sleep=lambda s: None)
    assert registry.get_model(runtime.catalog, name).status == "submitted"
    assert earlier.read_bytes() == b"an earlier download"
    assert sorted(p.name for p in runtime.settings.runs_dir.iterdir()) == [name]  # no staging folder left


def test_failed_job_is_reported_and_marked_failed(
    runtime: Runtime, tiny_model: tuple[str, str], aws: tuple[Any, Any]
) -> None:
    sm, s3 = aws
    registry.register_model(runtime.catalog, "job-f", "sagemaker", tiny_model[0], tiny_model[1], "submitted")
    with Stubber(sm) as stub:
        stub.add_response(
            "describe_training_job",
            _describe("job-f", "Failed", "Failed", 30, FailureReason="AlgorithmError: CUDA out of memory"),
        )
        with pytest.raises(AwsError, match="CUDA out of memory"):
            sagemaker.collect_job(sm, s3, runtime.catalog, runtime.settings.runs_dir, "job-f", sleep=lambda s: None)
    assert registry.get_model(runtime.catalog, "job-f").status == "failed"


def test_bad_role_and_aws_errors_are_clear(runtime: Runtime, tmp_path: Path, aws: tuple[Any, Any]) -> None:
    sm, s3 = aws
    fill_with_cars(runtime, tmp_path / "cars", seeds=1)
    with pytest.raises(InvalidInputError, match="IAM role ARN"):
        sagemaker.submit_training(
            sm, s3, runtime.catalog, fast_config(runtime, batch_size=4), "my-role", BUCKET, "us-east-1"
        )
    with Stubber(sm) as stub:
        stub.add_client_error(
            "create_training_job",
            "ResourceLimitExceeded",
            "The account-level service limit 'ml.g5.xlarge for training job usage' is 0",
        )
        with pytest.raises(AwsError, match="service limit"):
            sagemaker.submit_training(
                sm, s3, runtime.catalog, fast_config(runtime, batch_size=4), ROLE, BUCKET, "us-east-1"
            )
    assert registry.list_models(runtime.catalog) == []  # nothing recorded for a job that was never created


def test_every_region_botocore_lists_for_sagemaker_has_a_training_image() -> None:
    import boto3

    session = boto3.Session()
    regions = {
        r
        for partition in ("aws", "aws-us-gov", "aws-cn")
        for r in session.get_available_regions("sagemaker", partition)
    }
    assert regions and all(sagemaker_images.dlc_account(region) for region in regions)
    assert sagemaker.training_image_uri("ap-southeast-7", "ml.g5.xlarge").startswith(
        "590183813437.dkr.ecr.ap-southeast-7."
    )


def test_a_region_without_a_training_image_is_refused_before_anything_is_uploaded(
    runtime: Runtime, tmp_path: Path, aws: tuple[Any, Any]
) -> None:
    sm, s3 = aws
    fill_with_cars(runtime, tmp_path / "cars", seeds=1)
    with Stubber(sm), pytest.raises(InvalidInputError) as caught:  # no response queued: no job may be created
        sagemaker.submit_training(
            sm, s3, runtime.catalog, fast_config(runtime, batch_size=4), ROLE, BUCKET, "xx-moon-1"
        )
    assert (caught.value.field, caught.value.value) == ("aws_region", "xx-moon-1")
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


@pytest.mark.parametrize(
    "network,field",
    [
        (NetworkPlan(network_isolation=True), "network_isolation"),
        (NetworkPlan(vpc_config={"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}), "vpc_has_internet"),
    ],
)
def test_network_isolation_or_a_vpc_without_internet_is_refused_up_front(
    runtime: Runtime, tmp_path: Path, aws: tuple[Any, Any], network: NetworkPlan, field: str
) -> None:
    sm, s3 = aws
    fill_with_cars(runtime, tmp_path / "cars", seeds=1)
    config = fast_config(runtime, batch_size=4)
    with Stubber(sm), pytest.raises(InvalidInputError, match="pip") as caught:
        sagemaker.submit_training(sm, s3, runtime.catalog, config, ROLE, BUCKET, "us-east-1", network=network)
    assert caught.value.field == field and s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_a_vpc_with_internet_is_sent_with_the_job(runtime: Runtime, tmp_path: Path, aws: tuple[Any, Any]) -> None:
    sm, s3 = aws
    fill_with_cars(runtime, tmp_path / "cars", seeds=1)
    vpc = {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    with Stubber(sm) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/v"})
        sent: list[dict[str, Any]] = []
        sm.meta.events.register(
            "provide-client-params.sagemaker.CreateTrainingJob", lambda params, **kw: sent.append(params)
        )
        network = NetworkPlan(vpc_config=vpc, vpc_has_internet=True)
        sagemaker.submit_training(
            sm, s3, runtime.catalog, fast_config(runtime, batch_size=4), ROLE, BUCKET, "us-east-1", network=network
        )
    assert sent[0]["VpcConfig"] == vpc


@pytest.mark.parametrize("status", ["Stopped", "Deleting", "Failed", "Completed"])
def test_any_terminal_or_deleting_status_ends_the_wait(aws: tuple[Any, Any], status: str) -> None:
    sm, _ = aws
    with Stubber(sm) as stub:
        stub.add_response("describe_training_job", _describe("job-w", "InProgress", "Training"))
        stub.add_response("describe_training_job", _describe("job-w", status, status))
        ended = sagemaker.wait_for_job(sm, "job-w", sleep=lambda s: None)
        stub.assert_no_pending_responses()
    assert ended.status == status and ended.done


def test_the_container_installs_the_local_versions_of_carmatchs_packages() -> None:
    from importlib.metadata import version

    with tarfile.open(fileobj=io.BytesIO(sagemaker.package_source()), mode="r:gz") as tar:
        member = tar.extractfile("requirements.txt")
        assert member is not None
        pins = member.read().decode().split()
    assert f"open_clip_torch=={version('open_clip_torch')}" in pins and all("==" in p for p in pins)
    assert not any(p.startswith("torch==") for p in pins)  # the DLC's own torch stays


def test_spot_training_waits_for_capacity_and_a_zero_quota_stops_before_any_upload(
    runtime: Runtime, tmp_path: Path, aws: tuple[Any, Any]
) -> None:
    sm, s3 = aws
    fill_with_cars(runtime, tmp_path / "cars", seeds=1)
    config = fast_config(runtime, epochs=1, batch_size=4)
    quotas = boto3.client("service-quotas", region_name="us-east-1")
    quota = {"QuotaName": "ml.g5.xlarge for spot training job usage", "QuotaCode": "L-SPOT", "Value": 0.0}
    with Stubber(quotas) as q, Stubber(sm):  # no create_training_job queued
        q.add_response("list_service_quotas", {"Quotas": [quota]}, {"ServiceCode": "sagemaker"})
        with pytest.raises(AwsError, match="spot training job usage.*Nothing was uploaded"):
            sagemaker.submit_training(
                sm, s3, runtime.catalog, config, ROLE, BUCKET, "us-east-1", quotas=quotas, spot=True
            )
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
    with Stubber(quotas) as q, Stubber(sm) as stub:
        q.add_response("list_service_quotas", {"Quotas": [{**quota, "Value": 1.0}]}, {"ServiceCode": "sagemaker"})
        sent: list[dict[str, Any]] = []
        sm.meta.events.register(
            "provide-client-params.sagemaker.CreateTrainingJob", lambda params, **kw: sent.append(params)
        )
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/s"})
        sagemaker.submit_training(
            sm, s3, runtime.catalog, config, ROLE, BUCKET, "us-east-1", quotas=quotas, spot=True, max_runtime_s=3600
        )
    assert sent[0]["EnableManagedSpotTraining"] is True
    assert sent[0]["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
