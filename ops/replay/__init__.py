"""`attrib replay`: re-process archived raw deliveries (a time range) or dead letters into a target you name."""
