"""The provisioned-throughput rate from the AWS Price List API (botocore's Stubber on the real pricing model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from admin.cli import main
from carmatch.cloud import titan_provision
from carmatch.cloud.titan_pricing import listed_rate
from carmatch.errors import InvalidInputError
from carmatch.runtime import Runtime
from tests.cloud.test_titan_provision import finished_job

REQUEST = {
    "ServiceCode": "AmazonBedrock",
    "Filters": [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"}],
}
TITAN = "Titan Multimodal Embeddings G1"


def product(model: str, usage_type: str, usd: float, unit: str = "hour", region: str = "us-east-1") -> str:
    """One Price List item, as GetProducts returns it: a JSON string."""
    attributes = {"model": model, "usagetype": usage_type, "regionCode": region, "servicecode": "AmazonBedrock"}
    dimension = {"unit": unit, "pricePerUnit": {"USD": f"{usd:.10f}"}, "description": usage_type}
    terms = {"OnDemand": {"OFFER": {"priceDimensions": {"RATE": dimension}}}}
    return json.dumps({"product": {"sku": usage_type, "attributes": attributes}, "terms": terms})


NOISE = [
    product("Nova 2.0 Lite", "USE1-Nova2.0Lite-ProvisionedThroughput-NoCommit-ModelUnits", 60.5),
    product(TITAN, "USE1-TitanMultimodalEmbeddingsG1-input-tokens", 0.0008, unit="1K tokens"),
    product(TITAN, "USE1-TitanMultimodalEmbeddingsG1-ProvisionedThroughput-1month-ModelUnits", 9.5),
    product(TITAN, "USW2-TitanMultimodalEmbeddingsG1-ProvisionedThroughput-NoCommit-ModelUnits", 12.0, region="x"),
]
TITAN_NO_COMMIT = product(TITAN, "USE1-TitanMultimodalEmbeddingsG1-ProvisionedThroughput-NoCommit-ModelUnits", 11.25)


@pytest.fixture
def pricing(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Stubber]]:
    """A real pricing client (fake credentials, us-east-1 endpoint) under Stubber; never reaches AWS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("pricing", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub


def test_the_rate_for_the_region_and_term_is_found_across_pages(pricing: tuple[Any, Stubber]) -> None:
    client, stub = pricing
    stub.add_response("get_products", {"PriceList": NOISE[:2], "NextToken": "page-2"}, REQUEST)
    stub.add_response("get_products", {"PriceList": [*NOISE[2:], TITAN_NO_COMMIT]}, {**REQUEST, "NextToken": "page-2"})
    rate = listed_rate(client, "us-east-1", "none")
    assert (rate.usd_per_hour, rate.usage_type) == (
        11.25,
        "USE1-TitanMultimodalEmbeddingsG1-ProvisionedThroughput-NoCommit-ModelUnits",
    )
    stub.assert_no_pending_responses()


def test_the_plan_states_the_listed_rate_and_where_it_came_from(runtime: Runtime, pricing: tuple[Any, Stubber]) -> None:
    client, stub = pricing
    finished_job(runtime)
    stub.add_response("get_products", {"PriceList": [*NOISE, TITAN_NO_COMMIT]}, REQUEST)
    plan = titan_provision.plan_provision(
        runtime.catalog, "carmatch-titan-1", 2, "1-month", None, None, client, "us-east-1"
    )
    assert plan.hourly_usd == 19.0  # 2 units at the 1-month rate
    assert "AWS Price List: USE1-TitanMultimodalEmbeddingsG1-ProvisionedThroughput-1month" in plan.statement()


@pytest.mark.parametrize(
    "answer,said",
    [
        ([], "has no provisioned-throughput price for Titan Multimodal Embeddings in us-east-1 with no commitment"),
        ([TITAN_NO_COMMIT, TITAN_NO_COMMIT.replace("11.25", "13.00")], "several prices"),
    ],
)
def test_no_single_listed_price_asks_for_hourly_usd(
    runtime: Runtime, pricing: tuple[Any, Stubber], answer: list[str], said: str
) -> None:
    client, stub = pricing
    finished_job(runtime)
    stub.add_response("get_products", {"PriceList": answer}, REQUEST)
    with pytest.raises(InvalidInputError, match=said) as caught:
        titan_provision.plan_provision(runtime.catalog, "carmatch-titan-1", 1, "none", None, None, client, "us-east-1")
    assert caught.value.field == "hourly_usd" and "bedrock/pricing" in str(caught.value)


def test_a_price_list_the_identity_may_not_read_asks_for_hourly_usd(
    runtime: Runtime, pricing: tuple[Any, Stubber]
) -> None:
    client, stub = pricing
    finished_job(runtime)
    stub.add_client_error("get_products", "AccessDeniedException", "not authorized to perform pricing:GetProducts")
    with pytest.raises(InvalidInputError, match="could not be read.*AccessDenied") as caught:
        titan_provision.plan_provision(runtime.catalog, "carmatch-titan-1", 1, "none", None, None, client, "us-east-1")
    assert caught.value.field == "hourly_usd"


def test_the_cli_reads_the_rate_when_no_hourly_usd_is_given_and_creates_nothing(
    runtime: Runtime, pricing: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stub = pricing
    finished_job(runtime)
    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "carmatch.aws.make_client", lambda service, region, **kw: asked.append((service, region)) or client
    )
    stub.add_response("get_products", {"PriceList": [TITAN_NO_COMMIT]}, REQUEST)
    assert main(["titan", "provision", "carmatch-titan-1"]) == 0
    out = capsys.readouterr().out
    assert "$11.25/hour each (AWS Price List" in out and "Nothing was created" in out
    assert asked == [("pricing", "us-east-1")]
    stub.add_response("get_products", {"PriceList": []}, REQUEST)
    assert main(["titan", "provision", "carmatch-titan-1"]) == 1
    assert "--hourly-usd is needed" in capsys.readouterr().err
    stub.assert_no_pending_responses()
