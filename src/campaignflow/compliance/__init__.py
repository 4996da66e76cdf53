"""Privacy and compliance orchestration: the send-time gate, erasure, retention (GDPR).

The pure rules live in ``domain/`` and the I/O in ``store/``; this package joins them.
"""
