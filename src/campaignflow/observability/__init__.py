"""What a running process tells its operators: structured logs (metrics and alerts follow)."""
