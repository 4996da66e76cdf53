"""Test support: fixtures and throwaway servers."""
