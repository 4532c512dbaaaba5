"""Ingestion jobs: their state, progress and result."""

from __future__ import annotations

import json
import uuid
from typing import Any

from app.errors import NotFound
from app.store.connection import Connection
from app.store.records import JOB_STATES, Job, now


class Jobs(Connection):
    """Background ingestion jobs, kept so a client can poll them."""

    def create_job(self, collection: str, total: int = 0) -> Job:
        """A new queued job."""
        stamp = now()
        with self._transaction() as conn:
            job_id = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO jobs (id, collection, state, total, created_at, updated_at) "
                "VALUES (?, ?, 'queued', ?, ?, ?)",
                (job_id, collection, total, stamp, stamp),
            )
        return self.get_job(job_id)

    def update_job(self, job_id: str, **fields: Any) -> Job:
        """Set some of a job's state, total, done, error and result."""
        unknown = set(fields) - {"state", "total", "done", "error", "result"}
        if unknown:
            raise TypeError(f"update_job got unknown fields: {', '.join(sorted(unknown))}")
        if "state" in fields and fields["state"] not in JOB_STATES:
            raise ValueError(f"Unknown job state {fields['state']!r}")
        if "result" in fields:
            fields["result"] = json.dumps(fields["result"])
        fields["updated_at"] = now()
        assignments = ", ".join(f"{column} = ?" for column in fields)
        with self._transaction() as conn:
            conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*fields.values(), job_id])
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> Job:
        """A job; NotFound if there is none."""
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", [job_id])
        if not rows:
            raise NotFound(f"No job with id {job_id}.", param="job_id")
        row = rows[0]
        return Job(**(row | {"result": json.loads(row["result"]) if row["result"] else None}))

    def fail_unfinished_jobs(self, reason: str) -> int:
        """Mark every queued or running job failed (they died with the process); returns how many."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = 'failed', error = ?, updated_at = ? "
                "WHERE state NOT IN ('done', 'failed')",
                (reason, now()),
            )
        return cursor.rowcount
