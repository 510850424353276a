"""Shared HTTP plumbing both front doors use: body reading, the error envelope, dependencies,
middleware, CORS and the explorer pages. It knows HTTP; it holds no business rules."""
