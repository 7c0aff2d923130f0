"""What the senders document about waiting for our answer (README "Durability and shutdown" has the table and its
sources). The ingress must answer every verified delivery within the shortest of these, broker crash or not."""

from __future__ import annotations

# Documented answer timeouts, seconds. Senders that document none are absent (AppsFlyer, Adjust, Singular, Kochava,
# Tenjin); for Standard Webhooks senders the spec's lower guidance applies.
ANSWER_TIMEOUT_S: dict[str, float] = {
    "branch": 2.0,  # help.branch.io FAQ "What is the retry logic for webhooks?"
    "linkrunner": 5.0,  # docs.linkrunner.io features/webhooks: "respond 2xx, recommended under 5 seconds"
    "standard_webhooks": 15.0,  # standardwebhooks.com spec: 15–30 s
}
SHORTEST_ANSWER_TIMEOUT_S = min(ANSWER_TIMEOUT_S.values())
