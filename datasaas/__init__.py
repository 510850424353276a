"""DataSaaS goals & revenue gateway: GraphQL and DataSaaS-compatible REST, one resolver layer."""

__version__ = "0.1.0"
