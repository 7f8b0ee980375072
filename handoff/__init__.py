"""Delivering the outbox to the line workflows: the writer's own delivery after commit,
and the relay that every worker runs for whatever is left."""
