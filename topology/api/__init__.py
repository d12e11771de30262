"""The HTTP API: GraphQL, ingest endpoints, probes and metrics (see app.create_app)."""
