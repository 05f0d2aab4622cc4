"""Wire shape of the /viggo endpoint's answer (the logic is in `viggo.predictor`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from viggo.mr import Value


class ViggoPrediction(BaseModel):
    mr: str
    act: str
    attributes: dict[str, Value]
    grounded: bool = Field(
        True,
        description="False when the model's own answer had a name, developer, date or specifier that does not occur "
        "in the sentence: it invented it, most likely because the sentence is not about a video game (also when "
        "`redecoded` then took every value from the sentence).",
    )
    ungrounded: list[str] = Field(
        default_factory=list, description="The attributes whose values the model's own answer invented."
    )
    redecoded: bool = Field(
        False,
        description="The model's own answer had an open-slot value that is not a run of the sentence's words, so "
        "`mr` was decoded again with those values restricted to them (`viggo_span_values`).",
    )
