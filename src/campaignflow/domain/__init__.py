"""Pure domain logic: definitions, expressions, durations and schedules. No I/O, no clock."""
