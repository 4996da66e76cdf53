"""HTTP API: FastAPI app, one router per resource, problem details, auth dependencies."""
