"""Kafka/Faust adapters around the pure core: topics, producer, Faust app, web routes."""
