"""Wire shapes of the NER endpoints: what callers send and get back (the logic is in `ner.records`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from ner.schema import EntitySpan
from serving.errors import RequestError

EXAMPLE_TEXT = "Angela Merkel visited the Siemens plant in Erlangen on 4 March 2019."

MinScore = Annotated[
    float | None,
    Field(
        ge=0,
        le=1,
        description="Leave out entities whose `score` (the model's probability for their type) is below this; "
        "default: keep all.",
        examples=[0.5],
    ),
]


class TextSample(BaseModel):
    """One text: `{text, id?}` or the text-sample shape `{id, body}`."""

    text: Annotated[str | None, Field(description="The text to extract entities from.", examples=[EXAMPLE_TEXT])] = None
    body: Annotated[str | None, Field(description="Alternative to `text` (the `{id, body}` text-sample shape).")] = None
    id: Annotated[str | None, Field(description="Record id for the stored result; generated when absent.")] = None

    def content(self) -> str:
        if self.text is not None and self.body is not None:
            raise RequestError("give either `text` or `body`, not both", field="text")
        content = self.text if self.text is not None else self.body
        if content is None:
            raise RequestError("missing: give `text` (or `body` with `id`)", field="text")
        return content


class ExtractionMeta(BaseModel):
    model: str
    adapter: str | None
    latency_ms: float
    dropped: int = Field(description="Entities the model produced that do not occur in the text (removed).")
    stored_at: str | None = Field(description="Where the result was persisted; null when `persist` is false.")
    upload_pending: bool = Field(False, description="True while the result waits in the local spool for S3.")


class EntityResult(BaseModel):
    id: str
    persons: list[str]
    organizations: list[str]
    locations: list[str]
    dates: list[str]
    spans: list[EntitySpan]
    meta: ExtractionMeta


class ItemError(BaseModel):
    """A batch item's error: the same fields as the error body of a single request."""

    message: str
    type: str
    param: str | None
    code: int


class BatchItemResult(BaseModel):
    index: int
    id: str | None
    result: EntityResult | None = None
    error: ItemError | None = None
