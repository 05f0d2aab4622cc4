"""The shapes callers see: the four entity lists, their character spans, and extraction metadata."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

EntityType = Literal["person", "organization", "location", "date"]

# Field of `Entities` for each entity type; the order is also the tie-break order in grounding.
ENTITY_FIELDS: dict[EntityType, str] = {
    "person": "persons",
    "organization": "organizations",
    "location": "locations",
    "date": "dates",
}


class Entities(BaseModel):
    persons: list[str] = Field(default_factory=list)
    organizations: list[str] = Field(default_factory=list)
    locations: list[str] = Field(default_factory=list)
    dates: list[str] = Field(default_factory=list)


class EntitySpan(BaseModel):
    type: EntityType
    text: str = Field(description="Exactly text[start:end] of the input.")
    start: int = Field(ge=0)
    end: int = Field(gt=0, description="Exclusive.")
    score: float | None = Field(
        None,
        ge=0,
        le=1,
        description="The model's probability for this type (1 for dates, which rules find); null when unknown.",
    )


class Extraction(Entities):
    spans: list[EntitySpan] = Field(default_factory=list, description="Every occurrence, sorted by start.")
    dropped: int = Field(0, ge=0, description="Entities the model produced that do not occur in the input.")
    retries: int = Field(0, ge=0, description="Generations repeated with a larger token budget.")
    finish: str | None = Field(None, description="The model's finish reason; None when no generation was needed.")

    def entities(self) -> Entities:
        return Entities(
            persons=self.persons, organizations=self.organizations, locations=self.locations, dates=self.dates
        )
