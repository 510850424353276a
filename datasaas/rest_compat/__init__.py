"""REST compatibility layer: the DataSaaS ``/api/v1`` routes, thin adapters over the resolvers."""
