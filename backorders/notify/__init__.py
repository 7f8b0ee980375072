"""Customer and staff notifications: what is said (templates), to whom and how
(routing and preferences), and the providers that carry it (channels)."""
