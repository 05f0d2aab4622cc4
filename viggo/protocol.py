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
        description="False when a name, developer, date or specifier of the MR does not occur in the sentence: "
        "the model invented it, most likely because the sentence is not about a video game.",
    )
    ungrounded: list[str] = Field(default_factory=list, description="The attributes whose values are invented.")
