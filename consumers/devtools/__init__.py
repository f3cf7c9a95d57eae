"""Tools for development and tests: the embedded Kafka-protocol broker."""
