"""The hourly price of Titan Multimodal Embeddings provisioned throughput, from the AWS Price List API.

``titan provision`` states the cost before it creates anything. When no ``--hourly-usd`` is given it
asks the Price List API (``pricing`` client, ``GetProducts``, service code ``AmazonBedrock``; the API
answers from us-east-1 for every region's prices). Bedrock lists provisioned throughput as one
product per model, region and term, with a usage type such as
``USE1-<Model>-ProvisionedThroughput-NoCommit-ModelUnits`` priced per hour. A rate is used only when
exactly one price matches Titan Multimodal Embeddings, the region and the term; anything else
(nothing listed, several different prices, no access to the API) is reported and ``--hourly-usd``
is asked for instead: carmatch never guesses a price.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PRICING_REGION = "us-east-1"  # the Price List API's endpoint (it also answers from eu-central-1, ap-south-1)
SERVICE_CODE = "AmazonBedrock"
MODEL_WORDS = ("titan", "multimodal", "embed")  # all in the product's model name or usage type
TERM_WORDS = {"none": "nocommit", "1-month": "1month", "6-months": "6month"}  # titan_provision.COMMITMENTS keys
HOUR_UNITS = {"hour", "hours", "hrs", "hr"}


@dataclass(frozen=True)
class ListedRate:
    """The Price List's answer: the per-model-unit hourly rate, or why there is none."""

    usd_per_hour: float | None
    usage_type: str = ""  # the product the rate belongs to
    problem: str = ""  # why no rate is used, when usd_per_hour is None


def _words(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _matches(attributes: dict[str, Any], region: str, commitment: str) -> bool:
    """True for a provisioned-throughput product of Titan Multimodal Embeddings in ``region`` for the term."""
    usage = _words(str(attributes.get("usagetype", "")))
    named = usage + _words(str(attributes.get("model", "")))
    return (
        str(attributes.get("regionCode", region)) == region
        and "provisionedthroughput" in usage
        and TERM_WORDS[commitment] in usage
        and all(word in named for word in MODEL_WORDS)
    )


def _hourly_prices(product: dict[str, Any]) -> Iterator[float]:
    """The positive USD prices per hour of one Price List product (its OnDemand terms)."""
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            if str(dimension.get("unit", "")).strip().lower() not in HOUR_UNITS:
                continue
            try:
                usd = float(dimension.get("pricePerUnit", {}).get("USD", ""))
            except ValueError:
                continue
            if usd > 0:
                yield usd


def _products(pricing: Any, region: str) -> Iterator[dict[str, Any]]:
    """Every AmazonBedrock product the Price List has for ``region``, page by page."""
    filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]
    for page in pricing.get_paginator("get_products").paginate(ServiceCode=SERVICE_CODE, Filters=filters):
        for item in page.get("PriceList", []):
            yield json.loads(item) if isinstance(item, str) else item


def listed_rate(pricing: Any, region: str, commitment: str) -> ListedRate:
    """The Price List's per-unit hourly rate of Titan Multimodal Embeddings provisioned throughput."""
    from botocore.exceptions import BotoCoreError, ClientError

    found: dict[float, str] = {}
    try:
        for product in _products(pricing, region):
            attributes = product.get("product", {}).get("attributes", {})
            if _matches(attributes, region, commitment):
                for usd in _hourly_prices(product):
                    found.setdefault(usd, str(attributes.get("usagetype", "")))
    except (BotoCoreError, ClientError) as exc:
        log.warning("The AWS Price List could not be read: %s", exc)
        return ListedRate(None, problem=f"the AWS Price List API could not be read ({exc})")
    except (ValueError, AttributeError) as exc:  # a page that is not the Price List's JSON
        return ListedRate(None, problem=f"the AWS Price List answered with something unreadable ({exc})")
    term = "no commitment" if commitment == "none" else f"a {commitment} commitment"
    if not found:
        return ListedRate(
            None,
            problem=f"the AWS Price List has no provisioned-throughput price for Titan Multimodal Embeddings "
            f"in {region} with {term}",
        )
    if len(found) > 1:
        listed = ", ".join(f"${usd:,.2f} ({usage})" for usd, usage in sorted(found.items()))
        return ListedRate(None, problem=f"the AWS Price List has several prices for {region} with {term}: {listed}")
    (usd, usage), *_ = found.items()
    return ListedRate(usd, usage)
