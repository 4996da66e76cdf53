"""Behavior triggers: the triggers an event may start, found without evaluating them all."""
