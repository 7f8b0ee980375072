"""Transactional business operations against PostgreSQL."""
