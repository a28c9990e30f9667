"""`train --sagemaker --subnets ... --security-groups ... [--vpc-has-internet]`: a VPC from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from admin.cli import main
from carmatch.cloud.sagemaker_network import vpc_plan
from carmatch.errors import InvalidInputError
from carmatch.runtime import Runtime
from tests.cloud.test_sagemaker import BUCKET, ROLE, aws  # noqa: F401 - the fixture
from tests.training_support import fill_with_cars

SUBMIT = ["train", "--sagemaker", "--role-arn", ROLE, "--bucket", BUCKET, "--batch-size", "4"]
SPLIT = ["--val-fraction", "0.2", "--test-fraction", "0.25"]


@pytest.fixture
def clients(aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:  # noqa: F811
    """The CLI's SageMaker and S3 clients: Stubber-checked SageMaker, moto S3."""
    monkeypatch.setattr("carmatch.cloud.sagemaker.sagemaker_clients", lambda region: (*aws, None))
    return aws


@pytest.mark.parametrize(
    "flags,said",
    [
        (["--subnets", "subnet-1", "--security-groups", "sg-1"], "--vpc-has-internet is not confirmed"),
        (["--subnets", "subnet-1", "--vpc-has-internet"], "--security-groups needs 1 to 5 ids"),
        (["--subnets", "subnet 1", "--security-groups", "sg-1", "--vpc-has-internet"], "--subnets needs 1 to 16"),
        (["--vpc-has-internet"], "--vpc-has-internet applies only with subnets"),
    ],
)
def test_a_vpc_the_job_cannot_use_is_refused_before_anything_is_uploaded(
    runtime: Runtime,
    tmp_path: Path,
    clients: tuple[Any, Any],
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    said: str,
) -> None:
    sm, s3 = clients
    fill_with_cars(runtime, tmp_path / "cars", seeds=1)
    with Stubber(sm):  # no response queued: a CreateTrainingJob would fail the test
        assert main([*SUBMIT, *flags]) == 1
    assert said in capsys.readouterr().err
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_a_vpc_with_internet_goes_into_the_training_job(
    runtime: Runtime, tmp_path: Path, clients: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sm, _ = clients
    fill_with_cars(runtime, tmp_path / "cars", seeds=1)
    sent: list[dict[str, Any]] = []
    sm.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob", lambda params, **kw: sent.append(params)
    )
    flags = ["--subnets", "subnet-1, subnet-2", "--security-groups", "sg-1", "--vpc-has-internet", "--no-wait"]
    with Stubber(sm) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/v"})
        assert main([*SUBMIT, *SPLIT, *flags]) == 0
    assert sent[0]["VpcConfig"] == {"Subnets": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}
    assert "Submitted SageMaker training job" in capsys.readouterr().out


def test_no_vpc_flags_mean_sagemakers_own_network() -> None:
    plan = vpc_plan(None, "", False)
    assert plan.request() == {} and not plan.network_isolation
    with pytest.raises(InvalidInputError):
        vpc_plan(",".join(f"subnet-{n}" for n in range(17)), "sg-1", True)
