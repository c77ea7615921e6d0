"""Pipeline plumbing: configuration, frame I/O and the streaming runner."""
