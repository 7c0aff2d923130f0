"""Outbound routing: enriched events fanned out to HTTP destinations (`attrib route`).

Pure parts: :mod:`.view` (event → key-path view), :mod:`.filters`, :mod:`.template`, :mod:`.policy` (backoff, rate
limit, circuit breaker), :mod:`.offsets`. I/O: :mod:`.firsttime` (SQLite), :mod:`.sender` (aiohttp), :mod:`.service`
(Kafka).
"""
