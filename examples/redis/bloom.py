"""A walrus bloom filter: POST words to it, GET whether a word was (probably) added."""

from typing import Annotated, Any

from fastapi import HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from opa import JsonBodyError, config, get_instance, get_router, limit_body, parse_json

MAX_WORD = 100
MAX_WORDS = 1000
MAX_BODY = 64 * 1024
# The body is read through this cap as it arrives: a larger one is a 413 before more than
# MAX_BODY bytes are buffered, whether it declares its length or is sent in chunks.
router = get_router(tags=["bloom filter"], route_class=limit_body(MAX_BODY))
Word = Annotated[str, Query(min_length=1, max_length=MAX_WORD)]


def bloom_filter() -> Any:
    return get_instance("walrus").bloom_filter(f"{config.EXAMPLE_KEY_PREFIX}bloom")


def words_of(body: bytes, content_type: str) -> list[str]:
    """A JSON list of strings, or whitespace-separated text."""
    if not body:
        return []
    if content_type.startswith("application/json"):
        try:
            words = parse_json(body)  # deep nesting and lone surrogates are refused too
        except JsonBodyError as exc:
            raise HTTPException(422, f"the body is not valid JSON: {exc.msg}") from None
        if not (isinstance(words, list) and all(isinstance(w, str) for w in words)):
            raise HTTPException(422, "a JSON body must be a list of strings")
        return words
    try:
        return body.decode().split()
    except UnicodeDecodeError:
        raise HTTPException(422, "a text body must be UTF-8") from None


@router.post("/bloom")
async def add(
    request: Request, string: Annotated[list[str] | None, Query()] = None
) -> dict[str, int]:
    """Add the words given as ?string=... (repeatable) and in the body; return how many."""
    body = await request.body()  # at most MAX_BODY bytes, else 413 (see router)
    words = [*(string or []), *words_of(body, request.headers.get("content-type", ""))]
    if not words:
        raise HTTPException(422, "give words as ?string=... or in the body")
    if len(words) > MAX_WORDS or not all(0 < len(word) <= MAX_WORD for word in words):
        raise HTTPException(422, f"at most {MAX_WORDS} words of 1 to {MAX_WORD} characters")
    bloom = bloom_filter()

    def add_all() -> None:  # walrus is sync: keep its round trips off the event loop
        for word in words:
            bloom.add(word)

    await run_in_threadpool(add_all)
    return {"added": len(words)}


@router.get("/bloom")
def contains(string: Word) -> dict[str, Any]:
    """Whether *string* was added; a bloom filter may say yes wrongly, never no wrongly."""
    return {"string": string, "member": string in bloom_filter()}
