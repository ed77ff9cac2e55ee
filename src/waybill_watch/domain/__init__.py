"""The pure domain core: no Kafka, Faust or HTTP imports allowed in this package."""
