"""The Kafka seam for errors: confluent-kafka's exceptions mapped to :mod:`attrib.errors`.

Small on purpose: the Kafka client factory (``attrib/kafka.py``) owns Kafka's configuration and is the natural home
of this mapping; it absorbs this module when both exist.
"""

from __future__ import annotations

import re

from confluent_kafka import KafkaError, KafkaException

from attrib.errors import AttribError, ConfigurationError, DependencyUnavailable, ForeignErrors

# librdkafka error codes that no retry can fix: credentials, certificates, permissions, a fenced static member.
CONFIG_CODES = frozenset({
    KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL,
    KafkaError.ILLEGAL_SASL_STATE, KafkaError.UNSUPPORTED_SASL_MECHANISM, KafkaError._INVALID_ARG,
    KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.FENCED_INSTANCE_ID,
})

FOREIGN_ERRORS: ForeignErrors = {KafkaException: (ConfigurationError, DependencyUnavailable)}


def mapped(exc: KafkaException | KafkaError, what: str = "Kafka") -> AttribError:
    """ConfigurationError when no retry can help (credentials, TLS, permissions), DependencyUnavailable otherwise.
    ``what`` names the operation for the message."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    if isinstance(err, KafkaError):
        text = f"{what}: {err.name()}: {_one_line(err.str())}"
        return ConfigurationError(text) if err.code() in CONFIG_CODES else DependencyUnavailable(text)
    return DependencyUnavailable(f"{what}: {_one_line(str(exc))}")


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:500]
