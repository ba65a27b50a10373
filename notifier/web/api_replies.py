"""Patients' replies over the API: ``GET /api/v1/conversations`` and
``POST /api/v1/conversations/{id}/messages`` (an answer, for ``send`` tokens), for tokens of the
conversation's location (404 for anyone else's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from notifier.usecases.conversation_views import ConversationView, MessageView
from notifier.web.api import Id, Slug, StrictIn, TokenActor, require_token
from notifier.web.deps import Application

router = APIRouter(prefix="/api/v1", tags=["api"], dependencies=[Depends(require_token)])


class AnswerIn(StrictIn):
    message: str = Field(min_length=1, max_length=1600, examples=["Yes, we open at 8 AM."])


@router.get("/conversations", response_model=list[ConversationView])
def list_conversations(
    app: Application,
    actor: TokenActor,
    location: Annotated[Slug | None, Query(description="only this location's")] = None,
) -> list[ConversationView]:
    """The conversations of the token's locations, newest first, with their messages
    (patients' words and numbers: tokens created with ``--sees-patients``; 403 otherwise)."""
    return app.replies.conversations(actor, location)


@router.post(
    "/conversations/{conversation_id}/messages", status_code=201, response_model=MessageView
)
def answer_conversation(
    conversation_id: Id, body: AnswerIn, app: Application, actor: TokenActor
) -> MessageView:
    """Queue an answer to the patient, sent by the worker from the number they wrote to
    (``queued``; then ``sent``, ``delivered`` or ``failed`` with the reason, as the conversation
    and the delivery log show). 422 if the patient opted out."""
    return app.replies.answer(actor, conversation_id, body.message)
