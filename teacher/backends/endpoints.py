"""The endpoint fleet moved down into the core (distill/endpoints.py) so the judge shares it; re-exported."""

from distill.endpoints import MAX_BENCH_FACTOR, Endpoint, EndpointPool, safe_url

__all__ = ["MAX_BENCH_FACTOR", "Endpoint", "EndpointPool", "safe_url"]
