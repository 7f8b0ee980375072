"""Demand forecasting: `models` forecasts each SKU's weekly demand (pure, CPU-bound code on
plain numbers, picklable results, no I/O); `projection` turns a forecast into projected
stock, stockouts and replenishment suggestions."""
