from __future__ import annotations

import pytest
from liquid.exceptions import LiquidError

from campaignflow.domain.templates import TemplateIssue, environment, is_template, parse_template


def _issue(text: str) -> TemplateIssue:
    result = parse_template(text)
    assert isinstance(result, TemplateIssue), result
    return result


def test_valid_template_renders_in_the_sandbox() -> None:
    template = parse_template("Hi {{ contact.first_name | default: 'there' }}")
    assert not isinstance(template, TemplateIssue)
    assert template.render(contact={"first_name": "Ada"}) == "Hi Ada"
    assert template.render(contact={}) == "Hi there"


def test_syntax_error_has_line_and_column() -> None:
    issue = _issue("Dear customer,\nyour cart {{ input.cartId ")
    assert issue.code == "template_syntax"
    assert (issue.line, issue.column) == (2, 11)
    assert "line 2, column 11" in issue.message


def test_unknown_filter_is_reported() -> None:
    issue = _issue("{{ contact.name | shout }}")
    assert issue.code == "template_filter"
    assert "'shout'" in issue.message


def test_unknown_variable_root_is_reported_but_locals_are_fine() -> None:
    assert _issue("{{ customer.name }}").code == "template_variable"
    loop = "{% for item in event.items %}{{ item.name }}{% endfor %}{% assign n = 1 %}{{ n }}"
    assert not isinstance(parse_template(loop), TemplateIssue)


@pytest.mark.parametrize("tag", ["include", "render"])
def test_templates_cannot_load_other_templates(tag: str) -> None:
    issue = _issue(f"{{% {tag} 'secrets' %}}")
    assert issue.code == "template_syntax"
    assert "cannot load" in issue.message


def test_undefined_variables_fail_at_render_time() -> None:
    template = parse_template("{{ contact.missing }}")
    assert not isinstance(template, TemplateIssue)
    with pytest.raises(LiquidError):
        template.render(contact={})


def test_loops_are_bounded() -> None:
    assert environment().loop_iteration_limit is not None
    template = parse_template("{% for i in (1..100000) %}x{% endfor %}")
    assert not isinstance(template, TemplateIssue)
    with pytest.raises(LiquidError):
        template.render()


def test_plain_strings_are_not_templates() -> None:
    assert not is_template("https://example.com/{id}")
    assert is_template("{{ x }}")
    assert is_template("{% if x %}{% endif %}")
