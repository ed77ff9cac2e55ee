"""waybill-watch: real-time detection of parcel-delivery problems on Kafka."""

__version__ = "0.1.0"
