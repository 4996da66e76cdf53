"""Use cases shared by every interface: REST, GraphQL and the CLI call the same functions here."""
