"""Wire shape of the /viggo endpoint's answer (the logic is in `viggo.predictor`)."""

from __future__ import annotations

from pydantic import BaseModel

from viggo.mr import Value


class ViggoPrediction(BaseModel):
    mr: str
    act: str
    attributes: dict[str, Value]
