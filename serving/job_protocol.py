"""Wire shapes of extraction jobs: what a job is given, and the manifest it writes (the logic is in serving/jobs.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

JobSource = Annotated[
    str,
    Field(
        description="`s3://bucket/prefix/` (every .jsonl under it; .csv too for ViGGO), an s3:// object, or a local "
        "file or folder inside the `job_input_roots` setting.",
        examples=["s3://my-bucket/corpus/"],
    ),
]
Overwrite = Annotated[
    bool,
    Field(description="Run records again whose result is already stored for this model and adapter (default: skip)."),
]
JobId = Annotated[
    str | None,
    Field(
        description="Names the manifest `{results_uri}/_jobs/{job_id}.json`; default: the task id `submit` returned. "
        "Give the same one when re-submitting a job to keep one manifest.",
        pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$",
    ),
]

JobStatus = Literal["running", "completed", "failed", "interrupted"]


class FailedRecord(BaseModel):
    id: str | None = Field(description="The record's id, when it had a usable one.")
    location: str = Field(description="Where the record is: `file:line` (the CSV header is line 1).")
    reason: str


class JobCounts(BaseModel):
    read: int = 0
    succeeded: int = 0
    skipped: int = Field(0, description="Already stored for this model and adapter (not `overwrite`).")
    failed: int = 0


class JobManifest(BaseModel):
    """`{results_uri}/_jobs/{job_id}.json`: rewritten while the job runs, and when it ends."""

    job_id: str
    kind: Literal["ner", "viggo"]
    source: str
    results_uri: str
    model: str
    adapter: str | None
    overwrite: bool
    status: JobStatus
    error: str | None = Field(None, description="Why the job stopped before the end of its input.")
    started_at: str
    updated_at: str
    ended_at: str | None = None
    counts: JobCounts = Field(default_factory=JobCounts)
    records_per_s: float = Field(0.0, description="Records done (succeeded or failed, not skipped) per second.")
    failed: list[FailedRecord] = Field(
        default_factory=list, description="The failed records (the first 1,000; `counts.failed` counts all)."
    )
