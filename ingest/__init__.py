"""Ingress: the aiohttp app that verifies MMP deliveries and stores them durably in Kafka."""
