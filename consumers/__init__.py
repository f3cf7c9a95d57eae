"""The processes that touch Kafka: scoring worker, calibration publisher, replay and audit readers."""
