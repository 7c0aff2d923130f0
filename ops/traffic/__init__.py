"""Signed sample traffic for a running ingress (`attrib send`) and synthetic deliveries for benches and tests."""
