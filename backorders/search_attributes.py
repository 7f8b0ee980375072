"""Custom search attributes on every line workflow, so ops can filter in the Temporal UI.

Registered with the server by `ensure_search_attributes`; the keys are imported by
workflow code, which is why this module imports nothing but the SDK's common types."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

SKU = SearchAttributeKey.for_keyword("Sku")
ORDER_NUMBER = SearchAttributeKey.for_keyword("OrderNumber")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
CUSTOMER_TIER = SearchAttributeKey.for_keyword("CustomerTier")
BACKORDER_STATUS = SearchAttributeKey.for_keyword("BackorderStatus")

ALL = (SKU, ORDER_NUMBER, CUSTOMER_ID, CUSTOMER_TIER, BACKORDER_STATUS)
