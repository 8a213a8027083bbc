"""How the ledger keys what a billable call buys."""

from __future__ import annotations

from airflow_provider_patsnap.hooks._purchase import report_subject


def test_a_report_subject_names_its_identifiers_sorted_without_the_type() -> None:
    body = {"report_type": "pdf", "org_number": "91", "company_name": "华为技术有限公司 & Co"}
    assert report_subject(body) == "company_name=华为技术有限公司 %26 Co&org_number=91"


def test_no_value_can_pass_for_two_identifiers() -> None:
    smuggled = report_subject({"company_name": "ACME&org_number=91"})
    honest = report_subject({"company_name": "ACME", "org_number": "91"})
    assert smuggled != honest
    assert report_subject({"company_name": "A%26B"}) != report_subject({"company_name": "A&B"})
