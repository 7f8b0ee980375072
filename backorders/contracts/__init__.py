"""Typed contracts between the services, the workflows and their activities."""
