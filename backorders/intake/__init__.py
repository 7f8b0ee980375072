"""Channel intake: each sales platform's own order payload, and how it becomes the one
operational order model (`backorders.schemas.OrderIn`). One small, table-like module per
platform; `mapping` holds what they share."""
