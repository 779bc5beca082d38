"""A route with a path parameter: its requests count under the route template
``/items/{item_id}`` in ``opa_http_requests_total``, whichever item a client asks for."""

from opa import get_router

router = get_router()


@router.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    """Echo the item's id."""
    return {"item": item_id}
