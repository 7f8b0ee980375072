"""Stand-ins for outside services that speak their real wire protocol on loopback, so the
real clients are exercised without the internet."""
