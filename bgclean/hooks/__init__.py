"""Integration points for other systems (impersonator / iPERCore background network, ...)."""
