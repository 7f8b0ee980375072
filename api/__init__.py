"""The HTTP API: sales channels, the ERP and ops talk to Backorders through it."""
