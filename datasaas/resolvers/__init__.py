"""Resolvers: the service layer both front doors call. Plain async functions over a session and
typed inputs, returning typed results and raising ``datasaas.errors.DomainError``s."""
