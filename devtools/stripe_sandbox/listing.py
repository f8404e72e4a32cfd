"""Stripe list semantics (newest first, limit, cursors, created filters).

localstripe lists oldest first and scans its whole store; the sandbox keeps
its own creation-ordered lists and pages through them here.
"""

from localstripe.resources import try_convert_to_int

from .errors import invalid

PAGE_PARAMS = frozenset({"limit", "starting_after", "ending_before",
                         "created", "expand"})
_COMPARISONS = {"gt": int.__gt__, "gte": int.__ge__,
                "lt": int.__lt__, "lte": int.__le__}


def check_params(params, allowed):
    for name in params:
        if name not in allowed:
            raise invalid(f"Received unknown parameter: {name}", param=name,
                          code="parameter_unknown")


def integer(value, param, minimum=None, maximum=None):
    number = try_convert_to_int(value)
    if (type(number) is not int
            or (minimum is not None and number < minimum)
            or (maximum is not None and number > maximum)):
        raise invalid(f"Invalid integer: {value}", param=param,
                      code="parameter_invalid_integer")
    return number


def _created_filter(created):
    if created is None:
        return None
    if not isinstance(created, dict):
        created = {"gte": created, "lte": created}
    tests = []
    for op, value in created.items():
        if op not in _COMPARISONS:
            raise invalid(f"Received unknown parameter: created[{op}]",
                          param=f"created[{op}]", code="parameter_unknown")
        tests.append((_COMPARISONS[op], integer(value, f"created[{op}]")))
    return lambda obj: all(test(obj.created, bound) for test, bound in tests)


def _position(items, id, param):
    for i, item in enumerate(items):
        if item.id == id:
            return i
    raise invalid(f"No such object: '{id}'", param=param,
                  code="resource_missing")


def paginate(items, params, url):
    """Stripe list JSON of `items` (given oldest first), newest first."""
    limit = integer(params.get("limit", 10), "limit", 1, 100)
    keep = _created_filter(params.get("created"))
    items = [item for item in reversed(items) if keep is None or keep(item)]
    if params.get("starting_after"):
        items = items[_position(items, params["starting_after"],
                                "starting_after") + 1:]
        page = items[:limit]
    elif params.get("ending_before"):
        items = items[:_position(items, params["ending_before"],
                                 "ending_before")]
        page = items[-limit:]
    else:
        page = items[:limit]
    # Expansions apply to each item: `data.charge` -> `charge`.
    expand = [path[5:] for path in params.get("expand") or ()
              if path.startswith("data.")]
    return {"object": "list", "url": url, "has_more": len(items) > limit,
            "data": [item._export(expand=expand) for item in page]}
