"""A small books API on SQL: create, list with paging, read, update and delete books.

It uses the component ``db`` (driver ``sqlalchemy-async``, see settings/) and gets an
``AsyncSession`` per request from ``async_session("db")``. Its tables come from
``python -m books.migrate``, run once before serving.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from books.models import Book
from opa import get_router
from opa_driver_sqlalchemy import async_session

router = get_router(prefix="/books", tags=["books"])

Db = Annotated[AsyncSession, async_session("db")]
BookId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the book's id")]


class BookIn(BaseModel):
    """What a client sends to add a book."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=200)
    author: str = Field(min_length=1, max_length=200)
    year: int | None = Field(default=None, ge=-3000, le=3000)


class BookPatch(BaseModel):
    """What a client sends to change a book: only the fields it names change."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str | None = Field(default=None, min_length=1, max_length=200)
    author: str | None = Field(default=None, min_length=1, max_length=200)
    year: int | None = Field(default=None, ge=-3000, le=3000)


class BookOut(BookIn):
    """A stored book, with the id it was given."""

    model_config = ConfigDict(from_attributes=True)

    id: int


async def found(db: AsyncSession, book_id: int) -> Book:
    """The book *book_id*, or 404."""
    book = await db.get(Book, book_id)
    if book is None:
        raise HTTPException(404, f"no book with id {book_id}")
    return book


@router.post("", status_code=201)
async def add_book(book: BookIn, db: Db) -> BookOut:
    stored = Book(**book.model_dump())
    db.add(stored)
    await db.commit()
    return BookOut.model_validate(stored)


@router.get("")
async def list_books(
    db: Db,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[BookOut]:
    """Books in the order they were added, *limit* at a time."""
    books = await db.scalars(select(Book).order_by(Book.id).limit(limit).offset(offset))
    return [BookOut.model_validate(book) for book in books]


@router.get("/{book_id}")
async def get_book(book_id: BookId, db: Db) -> BookOut:
    return BookOut.model_validate(await found(db, book_id))


@router.patch("/{book_id}")
async def change_book(book_id: BookId, change: BookPatch, db: Db) -> BookOut:
    book = await found(db, book_id)
    for field, value in change.model_dump(exclude_unset=True).items():
        if value is None and field != "year":
            raise HTTPException(422, f"{field} cannot be null")
        setattr(book, field, value)
    await db.commit()
    return BookOut.model_validate(book)


@router.delete("/{book_id}", status_code=204)
async def delete_book(book_id: BookId, db: Db) -> Response:
    await db.delete(await found(db, book_id))
    await db.commit()
    return Response(status_code=204)
