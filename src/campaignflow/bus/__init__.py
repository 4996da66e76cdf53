"""Coordination between processes: wake-ups now, the event stream with the triggers issue."""
