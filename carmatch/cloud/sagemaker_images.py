"""The AWS PyTorch training container (deep learning container) of each region SageMaker trains in.

The image is the newest PyTorch training DLC for SageMaker: PyTorch 2.10.0, Python 3.13, CUDA 13.0, Ubuntu 22.04
(aws/deep-learning-containers ``docs/src/data/pytorch-training/2.10-{gpu,cpu}-sagemaker.yml``: GA 2026-01-21,
end of patch support 2027-01-21; read 2026-12-08). The registry account per region is the SageMaker Python SDK's
table (``sagemaker-core`` 2.27.0, ``image_uri_config/pytorch.json``), the same for every PyTorch version.
tests/cloud/test_sagemaker.py checks that it covers every region botocore lists
for SageMaker. The isolated (us-iso*) regions are left out: their registries use other domains.
"""

from __future__ import annotations

from carmatch.errors import InvalidInputError

PYTORCH_VERSION = "2.10.0"
PYTHON_TAG = "py313"
CUDA_TAG = "cu130"
OS_TAG = "ubuntu22.04"
SUPPORT_ENDS = "2027-01-21"  # the DLC's end of patch support: pick the next image before then
DEFAULT_DLC_ACCOUNT = "763104351884"
DEFAULT_ACCOUNT_REGIONS = frozenset(
    {
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ca-central-1",
        "eu-central-1",
        "eu-north-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    }
)
DLC_ACCOUNTS = {  # regions whose registry is another account
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-east-2": "975050140332",
    "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-6": "633930458069",
    "ap-southeast-7": "590183813437",
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "mx-central-1": "637423239942",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
}


def dlc_account(region: str) -> str:
    """The ECR account holding the PyTorch training images in ``region``; InvalidInputError when none does."""
    if region in DLC_ACCOUNTS:
        return DLC_ACCOUNTS[region]
    if region in DEFAULT_ACCOUNT_REGIONS:
        return DEFAULT_DLC_ACCOUNT
    raise InvalidInputError(
        field="aws_region",
        value=region,
        label="AWS_REGION",
        reason="has no SageMaker PyTorch training image carmatch knows; pass the image URI (--image-uri) or use "
        "a region SageMaker trains in, e.g. us-east-1",
    )


def training_image_uri(region: str, instance_type: str) -> str:
    """The AWS PyTorch training container for ``region`` (GPU build for ml.g*/ml.p* instances)."""
    family = instance_type.split(".")[1] if instance_type.count(".") >= 2 else ""
    gpu = family[:1] in ("g", "p")
    account = dlc_account(region)
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    tag = (
        f"{PYTORCH_VERSION}-gpu-{PYTHON_TAG}-{CUDA_TAG}-{OS_TAG}-sagemaker"
        if gpu
        else f"{PYTORCH_VERSION}-cpu-{PYTHON_TAG}-{OS_TAG}-sagemaker"
    )
    return f"{account}.dkr.ecr.{region}.{domain}/pytorch-training:{tag}"
