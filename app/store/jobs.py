"""Ingestion jobs: what they ingest, who runs them (a lease), their state, progress and result.

Any replica's worker claims the oldest job nobody holds, or whose holder's lease has run out (a
replica that died), with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL; the holder renews
its lease while it works. Leases are wall-clock times: replicas' clocks must agree (NTP).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from app.errors import NotFound
from app.store.connection import Connection
from app.store.records import JOB_ENDED, JOB_STATES, Job, now

_JOB = (
    "id, collection, state, total, done, error, result, created_at, updated_at, worker, "
    "attempts, lease_until"
)


class LeaseLost(Exception):
    """The job's lease ran out and another worker holds it now: stop working on it."""


class Jobs(Connection):
    """Background ingestion jobs, kept so any replica can run one and any client can poll it."""

    def create_job(self, collection: str, payload: Any = None) -> Job:
        """A new queued job carrying ``payload`` (JSON) for whichever worker claims it."""
        stamp = now()
        job_id = uuid.uuid4().hex
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (id, collection, state, created_at, updated_at) "
                "VALUES (?, ?, 'queued', ?, ?)",
                (job_id, collection, stamp, stamp),
            )
            if payload is not None:
                conn.execute(
                    "INSERT INTO job_payloads (job_id, payload) VALUES (?, ?)",
                    (job_id, json.dumps(payload)),
                )
        return self.get_job(job_id)

    def claim_job(self, worker: str, lease_seconds: float, max_attempts: int) -> Job | None:
        """The oldest job nobody holds (or whose lease ran out), now held by ``worker``; None if
        there is none. A job already tried ``max_attempts`` times fails instead."""
        while True:
            with self._transaction() as conn:
                row = conn.execute(
                    "SELECT id, attempts FROM jobs WHERE state NOT IN ('done', 'failed') "
                    "AND (worker IS NULL OR lease_until < ?) ORDER BY created_at, id LIMIT 1"
                    + self.dialect.skip_locked,
                    [time.time()],
                ).fetchone()
                if row is None:
                    return None
                job_id, attempts = row
                if attempts < max_attempts:
                    conn.execute(
                        "UPDATE jobs SET worker = ?, lease_until = ?, attempts = attempts + 1, "
                        "updated_at = ? WHERE id = ?",
                        [worker, time.time() + lease_seconds, now(), job_id],
                    )
                    claimed = True
                else:
                    conn.execute(
                        "UPDATE jobs SET state = 'failed', error = ?, lease_until = NULL, "
                        "updated_at = ? WHERE id = ?",
                        [
                            f"Interrupted {attempts} times (its worker stopped each time); "
                            "upload the files again.",
                            now(),
                            job_id,
                        ],
                    )
                    conn.execute("DELETE FROM job_payloads WHERE job_id = ?", [job_id])
                    claimed = False
            if claimed:
                return self.get_job(job_id)

    def renew_lease(self, job_id: str, worker: str, lease_seconds: float) -> bool:
        """Extend ``worker``'s lease on the job; False if it no longer holds it."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND worker = ? "
                "AND state NOT IN ('done', 'failed')",
                [time.time() + lease_seconds, job_id, worker],
            )
        return cursor.rowcount == 1

    def release_job(self, job_id: str, worker: str) -> None:
        """End ``worker``'s lease on the unfinished job now, so any worker can resume it."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET lease_until = 0 WHERE id = ? AND worker = ? "
                "AND state NOT IN ('done', 'failed')",
                [job_id, worker],
            )

    def job_payload(self, job_id: str) -> Any:
        """What the job ingests, as given to ``create_job`` (None once it has finished)."""
        self.get_job(job_id)  # NotFound if there is no such job
        rows = self._tuples("SELECT payload FROM job_payloads WHERE job_id = ?", [job_id])
        return json.loads(rows[0][0]) if rows else None

    def update_job(self, job_id: str, worker: str | None = None, **fields: Any) -> Job:
        """Set some of a job's state, total, done, error and result.

        With ``worker``, only while that worker holds the job (LeaseLost otherwise). A finished
        job drops its payload and lease.
        """
        unknown = set(fields) - {"state", "total", "done", "error", "result"}
        if unknown:
            raise TypeError(f"update_job got unknown fields: {', '.join(sorted(unknown))}")
        if "state" in fields and fields["state"] not in JOB_STATES:
            raise ValueError(f"Unknown job state {fields['state']!r}")
        if "result" in fields:
            fields["result"] = json.dumps(fields["result"])
        finished = fields.get("state") in JOB_ENDED
        if finished:
            fields["lease_until"] = None
        fields["updated_at"] = now()
        assignments = ", ".join(f"{column} = ?" for column in fields)
        sql, params = f"UPDATE jobs SET {assignments} WHERE id = ?", [*fields.values(), job_id]
        if worker is not None:
            sql, params = sql + " AND worker = ?", [*params, worker]
        with self._transaction() as conn:
            updated = conn.execute(sql, params).rowcount
            if finished and updated:
                conn.execute("DELETE FROM job_payloads WHERE job_id = ?", [job_id])
        if worker is not None and not updated:
            raise LeaseLost(f"Job {job_id} is no longer held by {worker}.")
        return self.get_job(job_id)

    def job_ended(self, job_id: str) -> bool:
        """Whether the job is done or failed, reading its state alone (a waiting upload asks
        this often; the job's result grows with every document it stores)."""
        rows = self._tuples("SELECT state FROM jobs WHERE id = ?", [job_id])
        if not rows:
            raise NotFound(f"No job with id {job_id}.", param="job_id")
        return rows[0][0] in JOB_ENDED

    def get_job(self, job_id: str) -> Job:
        """A job (without its payload); NotFound if there is none."""
        rows = self._rows(f"SELECT {_JOB} FROM jobs WHERE id = ?", [job_id])
        if not rows:
            raise NotFound(f"No job with id {job_id}.", param="job_id")
        row = rows[0]
        return Job(**(row | {"result": json.loads(row["result"]) if row["result"] else None}))
