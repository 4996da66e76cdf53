"""Hypothesis strategies for parameter values, and the few-examples profile the contract tests
use (each example is a round trip to Prism)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from campaignflow.integrations.providers._common import EMAIL_MAX_LENGTH, EMAIL_PATTERN

# Every address the parameter models accept must be one the provider's spec accepts: drawn
# from the models' own pattern, odd characters (!#$%&'*+/=?^_`{|}~) included.
emails = st.from_regex(EMAIL_PATTERN, fullmatch=True).filter(
    lambda address: len(address) <= EMAIL_MAX_LENGTH
)
plain_emails = st.builds(
    "{}.{}@{}.example".format,
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8),
    st.sampled_from(["shop", "mail", "news"]),
)
texts = st.text(min_size=1, max_size=40)
names = st.text(min_size=1, max_size=30)

few = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,  # the same examples every run: a contract failure must reproduce
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
