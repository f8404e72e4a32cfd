"""The support form's two steps as a test client walks them: the filled form is reviewed on a
confirmation page, and only its Confirm files (with the signed values the page carries)."""


def confirmation_of(page) -> dict:
    """What the confirmation page's Confirm button posts."""
    assert page.status_code == 200, page.status_code
    assert "refunds/confirm.html" in [t.name for t in page.templates], page.context["form"].errors
    return {**dict(page.context["typed"]), "confirmation": page.context["signed"], "confirm": "1"}


def review_and_confirm(client, url, data):
    """Post the form, then Confirm on the confirmation page; the response to Confirm."""
    return client.post(url, confirmation_of(client.post(url, data)))
