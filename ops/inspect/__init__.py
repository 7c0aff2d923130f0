"""The live delivery inspector (`attrib inspect`) and its terminal twin (`attrib tail`).

:mod:`.redact` masks secrets and device ids (pure), :mod:`.store` keeps the latest rows, rates and open alerts (pure),
:mod:`.feed` fills the store from Kafka and the ingress's rejection feed, :mod:`.server` serves the page.
"""
