"""RQ job functions (thin: they open a session and call a service) and the worker runtime."""
