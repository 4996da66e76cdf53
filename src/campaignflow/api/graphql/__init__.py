"""GraphQL at ``/graphql`` (Strawberry): the REST resources' reads and writes over the same
services with the same permission checks, plus a subscription to the live step feed."""
