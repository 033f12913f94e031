"""The seven cron tools: create, list, get, update, delete, start and stop scheduled jobs.

A job is how the assistant does something later: a reminder, a recurring check-in. Each tool is
a thin call to the cron gateway's REST API; the gateway validates cron expressions, timezones
and times, and its error message (naming the field) comes back to the model as the tool error.
The arguments are the original ASPRI v2's (``jobId``, ``type``, ``scheduledTime``, ``delayTime``,
``enabled``, ``payload``) beside ASPRI's own (``runAt``, ``timezone``), all camelCase.

Annotations are evaluated when the tools are defined (no ``from __future__ import
annotations``): FastMCP builds the schemas from them, and some refer to settings.
"""

from typing import Annotated, Any, Literal

from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

from aspri.mcp import meta
from aspri.mcp.gateway import Gateways, parse, path_segment
from aspri.mcp.meta import ToolContext
from aspri.mcp.models import Deleted, Job, JobPage, JobPayload
from aspri.mcp.whatsapp_tools import READ_ONLY, IdempotencyKey

JobId = Annotated[
    str,
    Field(
        min_length=1,
        coerce_numbers_to_str=True,
        description="The job's jobId, as returned by cronjob_create or cronjob_list.",
    ),
]
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        coerce_numbers_to_str=True,
        description="Short name, e.g. 'Drink water'.",
    ),
]
Schedule = Annotated[
    str | None,
    Field(
        description="Recurring schedule: a 5-field cron expression 'minute hour day-of-month "
        "month day-of-week', read in `timezone`. Examples: '0 8 * * *' every day at 08:00; "
        "'30 18 * * 1-5' weekdays at 18:30; '*/15 * * * *' every 15 minutes; '0 9 1 * *' the "
        "1st of every month at 09:00; '0 20 * * 0' Sundays at 20:00.",
    ),
]
RunAt = Annotated[
    str | None,
    Field(
        description="One-shot time instead of a schedule, ISO-8601: '2030-03-01T09:00:00' is "
        "read in `timezone`; with an offset ('2030-03-01T09:00:00+07:00', '...Z') it is exact. "
        "Must be in the future; the job is completed after it fires.",
    ),
]
ScheduledTime = Annotated[
    str | int | None,
    Field(
        description="One-shot time as yyyyMMddHHmmss (14 digits, read in `timezone`), e.g. "
        "'20301221120000' = 21 December 2030 12:00:00; or Unix milliseconds. Must be in the "
        "future. For type one-time (runAt is the same in ISO-8601).",
    ),
]
DelayTime = Annotated[
    str | None,
    Field(
        description="One-shot after a delay from now, for type one-time-relative: [Xh][Ym][Zs], "
        "e.g. '2h', '30m', '45s', '2h30m', '1h15m30s'.",
    ),
]
JobType = Annotated[
    Literal["recurring", "one-time", "one-time-relative"] | None,
    Field(
        description="'recurring' (give schedule), 'one-time' (give scheduledTime or runAt) or "
        "'one-time-relative' (give delayTime). Optional: the time field you give says it.",
    ),
]
Payload = Annotated[
    JobPayload | None,
    Field(
        description="What happens when the job fires. A fixed text: "
        '{"chatId": "6281234567890@c.us", "message": "Time for your meeting!"}. A message '
        'the assistant writes at that moment: {"chatId": "6281234567890@c.us", "prompt": '
        '"Ask how the exam went"}. Use "phoneNumber": "+6281234567890" instead of chatId '
        "when you only have a number; without either, the job is for the current chat.",
    ),
]

CREATE = """Schedule a job that writes a WhatsApp message later, once or repeatedly: reminders,
recurring check-ins, daily summaries.

Give exactly one of `schedule` (a 5-field cron expression, for repeating jobs), `runAt` (an
ISO-8601 time with offset) or `scheduledTime` (yyyyMMddHHmmss) for a single reminder, or
`delayTime` (e.g. '2h30m') for a single reminder after a delay. `payload` says what is sent and
to whom: a fixed `message`, or a `prompt` from which the assistant writes the message when the
job fires.
For a reminder to the user, send it to the user's own chat id. Times are read in `timezone`
(IANA name, default {default_tz}). Returns the job with its jobId (needed to change, stop or
delete it) and nextRunAt, so you can tell the user when it will fire."""


def register(server: FastMCP, gateways: Gateways, default_timezone: str) -> None:
    """Add the cron tools to ``server``; ``default_timezone`` is the user's (ASPRI_TIMEZONE)."""
    service = gateways.cron
    timezone_help = (
        "IANA timezone name, e.g. Asia/Jakarta, Europe/Berlin, America/New_York or UTC. The "
        f"schedule is read in it. Default {default_timezone}."
    )

    @server.tool(
        title="Schedule a job",
        description=CREATE.format(default_tz=default_timezone),
        annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False),
    )
    async def cronjob_create(
        name: Name,
        ctx: ToolContext,
        type: JobType = None,
        schedule: Schedule = None,
        scheduledTime: ScheduledTime = None,
        delayTime: DelayTime = None,
        runAt: RunAt = None,
        timezone: Annotated[str, Field(min_length=1, description=timezone_help)] = (
            default_timezone
        ),
        enabled: Annotated[
            bool, Field(description="false creates it stopped (cronjob_start runs it).")
        ] = True,
        payload: Payload = None,
        idempotencyKey: IdempotencyKey = None,
    ) -> Job:
        key = meta.idempotency_key(ctx, idempotencyKey)
        fields = {
            "type": type,
            "schedule": schedule,
            "scheduledTime": scheduledTime,
            "delayTime": delayTime,
            "runAt": runAt,
        }
        given = (payload or JobPayload.model_validate({})).targeting(meta.turn_value(ctx, "chatId"))
        body: dict[str, Any] = {
            "name": name,
            **{k: v for k, v in fields.items() if v is not None},
            "timezone": timezone,
            "enabled": enabled,
            "payload": given.to_json(),
        }
        data = await gateways.call(service, "POST", "/api/jobs", json=body, idempotency_key=key)
        return parse(Job, data, service)

    @server.tool(title="List jobs", annotations=READ_ONLY)
    async def cronjob_list(
        status: Annotated[
            Literal["running", "stopped", "completed"] | None,
            Field(description="Only jobs in this state; leave it out for all jobs."),
        ] = None,
        offset: Annotated[int, Field(ge=0, description="Jobs to skip, for paging.")] = 0,
        limit: Annotated[int, Field(ge=1, le=100, description="Jobs per page, 1-100.")] = 20,
    ) -> JobPage:
        """List the scheduled jobs (reminders and recurring messages) with their schedules.

        Use it when the user asks what reminders they have, or to find the jobId of a job
        they want to change, stop or delete. `total` tells how many match; page with offset.
        """
        data = await gateways.call(
            service,
            "GET",
            "/api/jobs",
            params={"status": status, "offset": offset, "limit": limit},
        )
        return parse(JobPage, data, service)

    @server.tool(title="Get a job", annotations=READ_ONLY)
    async def cronjob_get(jobId: JobId) -> Job:
        """Get one scheduled job by its jobId: its schedule or runAt, timezone, payload,
        status (running, stopped, completed) and its last and next run time.

        Use it to answer questions about one reminder, e.g. "when does my water reminder
        fire next?", or to check a job before changing it."""
        data = await gateways.call(service, "GET", f"/api/jobs/{path_segment(jobId)}")
        return parse(Job, data, service)

    @server.tool(
        title="Change a job",
        annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=True, openWorldHint=False),
    )
    async def cronjob_update(
        jobId: JobId,
        ctx: ToolContext,
        name: Annotated[str | None, Field(min_length=1, max_length=200)] = None,
        schedule: Schedule = None,
        scheduledTime: ScheduledTime = None,
        runAt: RunAt = None,
        timezone: Annotated[str | None, Field(min_length=1, description=timezone_help)] = None,
        enabled: Annotated[
            bool | None, Field(description="true starts the job, false stops it.")
        ] = None,
        payload: Annotated[
            JobPayload | None,
            Field(description="A new payload, whole (without a chat: the current chat's)."),
        ] = None,
        idempotencyKey: IdempotencyKey = None,
    ) -> Job:
        """Change a job: only the fields you give change, the others stay as they are.

        Use it to move a reminder to another time, change its text or recipient, rename it,
        or switch it on or off (enabled). Returns the updated job with its new nextRunAt.
        """
        key = meta.idempotency_key(ctx, idempotencyKey)
        chat = meta.turn_value(ctx, "chatId")
        fields = {
            "name": name,
            "schedule": schedule,
            "scheduledTime": scheduledTime,
            "runAt": runAt,
            "timezone": timezone,
            "enabled": enabled,
            "payload": payload.targeting(chat).to_json() if payload is not None else None,
        }
        body = {k: v for k, v in fields.items() if v is not None}
        data = await gateways.call(
            service, "PATCH", f"/api/jobs/{path_segment(jobId)}", json=body, idempotency_key=key
        )
        return parse(Job, data, service)

    @server.tool(
        title="Delete a job",
        annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False),
    )
    async def cronjob_delete(
        jobId: JobId, ctx: ToolContext, idempotencyKey: IdempotencyKey = None
    ) -> Deleted:
        """Delete a scheduled job for good; it will not fire again and cannot be restored.

        Use it when the user cancels a reminder. To pause it instead, use cronjob_stop. Find
        the jobId with cronjob_list first if you do not have it."""
        key = meta.idempotency_key(ctx, idempotencyKey)
        data = await gateways.call(
            service, "DELETE", f"/api/jobs/{path_segment(jobId)}", idempotency_key=key
        )
        return Deleted(job=parse(Job, data, service))

    @server.tool(
        title="Resume a job",
        annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=True, openWorldHint=False),
    )
    async def cronjob_start(
        jobId: JobId, ctx: ToolContext, idempotencyKey: IdempotencyKey = None
    ) -> Job:
        """Resume a stopped job so it fires again from its next scheduled time; runs missed
        while it was stopped are not made up.

        Use it when the user wants a paused reminder back. Returns the job with its status
        and nextRunAt."""
        key = meta.idempotency_key(ctx, idempotencyKey)
        data = await gateways.call(
            service, "POST", f"/api/jobs/{path_segment(jobId)}/start", idempotency_key=key
        )
        return parse(Job, data, service)

    @server.tool(
        title="Pause a job",
        annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=True, openWorldHint=False),
    )
    async def cronjob_stop(
        jobId: JobId, ctx: ToolContext, idempotencyKey: IdempotencyKey = None
    ) -> Job:
        """Pause a job without deleting it: it does not fire until cronjob_start resumes it.

        Use it when the user wants a reminder off for a while ("no reminders this week").
        To remove a job for good, use cronjob_delete."""
        key = meta.idempotency_key(ctx, idempotencyKey)
        data = await gateways.call(
            service, "POST", f"/api/jobs/{path_segment(jobId)}/stop", idempotency_key=key
        )
        return parse(Job, data, service)
