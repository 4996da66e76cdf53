from __future__ import annotations

import pytest

from campaignflow.domain.actions import (
    ActionSpec,
    HttpParams,
    UnknownAction,
    builtin_catalog,
)


def test_builtins_resolve_to_their_params_model() -> None:
    catalog = builtin_catalog()
    assert catalog.resolve("http").params is HttpParams
    assert catalog.resolve("set").expression_params == frozenset({"variables"})
    assert catalog.names == ("http", "log", "set")


def test_unknown_plain_action_lists_known_names() -> None:
    with pytest.raises(UnknownAction) as caught:
        builtin_catalog().resolve("sendmail")
    assert caught.value.known == ("http", "log", "set")
    assert "http, log, set" in str(caught.value)


def test_unregistered_namespace_is_accepted_with_free_form_params() -> None:
    spec = builtin_catalog().resolve("hubspot.upsert_contact")
    assert spec.name == "hubspot.upsert_contact"
    assert spec.params is None


def test_registering_an_operation_closes_its_namespace() -> None:
    base = builtin_catalog()
    catalog = base.register(ActionSpec("sendgrid.send_email", "Send one email."))
    assert catalog.resolve("sendgrid.send_email").description == "Send one email."
    with pytest.raises(UnknownAction) as caught:
        catalog.resolve("sendgrid.send_mail")
    assert caught.value.known == ("sendgrid.send_email",)
    assert catalog.resolve("mailchimp.add_member").params is None  # other namespaces stay open
    with pytest.raises(UnknownAction):
        base.resolve("nope")
    assert "sendgrid.send_email" not in base.specs  # register returns a new catalog


def test_closed_catalog_refuses_unregistered_namespaces() -> None:
    from dataclasses import replace

    closed = replace(builtin_catalog(), open_namespaces=False)
    with pytest.raises(UnknownAction):
        closed.resolve("hubspot.upsert_contact")


def test_catalog_is_immutable() -> None:
    with pytest.raises(TypeError):
        builtin_catalog().specs["x"] = ActionSpec("x", "x")  # type: ignore[index]
