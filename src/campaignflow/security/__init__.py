"""Credentials, tokens and the checks that guard every endpoint."""
