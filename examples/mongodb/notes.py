"""A small notes API on MongoDB: create, list with paging, get and delete notes.

It uses the component ``mongodb`` (driver ``mongodb-async-pymongo``, see settings/) and its
default database, reached as ``get_component("mongodb").database``.
"""

from __future__ import annotations

from typing import Annotated, Any

from bson import ObjectId
from fastapi import Depends, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.collection import AsyncCollection

from opa import get_component, get_router, limit_body

# A note is at most 200 + 10,000 characters; 64 KiB of JSON holds that even with most
# characters escaped. A larger body is a 413, cut off as it arrives rather than buffered.
MAX_BODY = 64 * 1024
router = get_router(prefix="/notes", tags=["notes"], route_class=limit_body(MAX_BODY))

Document = dict[str, Any]


def notes_collection() -> AsyncCollection[Document]:
    """The ``notes`` collection of the component's default database (503 when it is down)."""
    collection: AsyncCollection[Document] = get_component("mongodb").database["notes"]
    return collection


Notes = Annotated[AsyncCollection[Document], Depends(notes_collection)]
# An ObjectId in its 24-hex-digit form; anything else is refused with 422 before a query.
NoteId = Annotated[str, Path(pattern="^[0-9a-fA-F]{24}$", description="the note's id")]


class NoteIn(BaseModel):
    """What a client sends to create a note."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=10_000)


class Note(NoteIn):
    """A stored note, with the id it was given."""

    id: str


class NotePage(BaseModel):
    """One page of notes, newest first, with the total for paging."""

    items: list[Note]
    total: int
    limit: int
    offset: int


def to_note(document: Document) -> Note:
    return Note(id=str(document["_id"]), title=document["title"], body=document["body"])


@router.post("", status_code=201)
async def create_note(note: NoteIn, notes: Notes) -> Note:
    document = note.model_dump()
    await notes.insert_one(document)  # sets document["_id"]
    return to_note(document)


@router.get("")
async def list_notes(
    notes: Notes,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> NotePage:
    # ObjectIds grow with time, so sorting on _id lists the newest first, stably.
    cursor = notes.find().sort("_id", -1).skip(offset).limit(limit)
    items = [to_note(document) async for document in cursor]
    return NotePage(items=items, total=await notes.count_documents({}), limit=limit, offset=offset)


@router.get("/{note_id}")
async def get_note(note_id: NoteId, notes: Notes) -> Note:
    document = await notes.find_one({"_id": ObjectId(note_id)})
    if document is None:
        raise HTTPException(status_code=404, detail=f"no note with id {note_id}")
    return to_note(document)


@router.delete("/{note_id}", status_code=204)
async def delete_note(note_id: NoteId, notes: Notes) -> Response:
    result = await notes.delete_one({"_id": ObjectId(note_id)})
    if result.deleted_count == 0:
        raise HTTPException(status_code=404, detail=f"no note with id {note_id}")
    return Response(status_code=204)
