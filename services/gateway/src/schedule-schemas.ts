/** REST shapes of schedules (/api/schedules). */
import { type Static, Type } from "typebox";

const Time = Type.String({ format: "date-time" });

const MissedPolicySchema = Type.Union([Type.Literal("skip"), Type.Literal("runOnce")], {
  title: "MissedPolicy",
  description:
    "Due times that passed while no executor ran: `skip` drops them, `runOnce` makes one run for the latest of them.",
});
const OverlapPolicySchema = Type.Union(
  [Type.Literal("allow"), Type.Literal("skip"), Type.Literal("queue")],
  {
    title: "OverlapPolicy",
    description:
      "A due time while the schedule's previous run is in flight: `allow` runs beside it, `skip` makes no run, `queue` makes a run that waits, queued, until the earlier ones ended.",
  },
);

/** A schedule as the API reports it. */
export const ScheduleSchema = Type.Object(
  {
    id: Type.String({ format: "uuid" }),
    name: Type.String(),
    pack: Type.Object({
      name: Type.String(),
      version: Type.String({ description: 'A version, or "latest" (resolved at each due time).' }),
    }),
    inputs: Type.Record(Type.String(), Type.Unknown()),
    cron: Type.String(),
    timeZone: Type.String({ description: "IANA time zone the cron expression is read in." }),
    missedPolicy: MissedPolicySchema,
    overlapPolicy: OverlapPolicySchema,
    paused: Type.Boolean(),
    createdBy: Type.String({ description: "The subject the schedule's runs are submitted as." }),
    createdAt: Time,
    nextDueAt: Type.Optional(
      Type.String({ format: "date-time", description: "Absent while paused." }),
    ),
    lastDueAt: Type.Optional(Time),
    lastRunId: Type.Optional(Type.String({ format: "uuid" })),
    lastError: Type.Optional(
      Type.String({ description: "Why the last due time made no run, when submitting it failed." }),
    ),
    priority: Type.Integer(),
    timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1 })),
    labels: Type.Record(Type.String(), Type.String()),
  },
  { title: "Schedule", description: "A pack run on a cron expression." },
);
export type ScheduleJson = Static<typeof ScheduleSchema>;

/** Request body of POST /api/schedules. */
export const CreateScheduleBodySchema = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 63,
      description: "Unique in the tenant: lower-case letters, digits, . _ -",
    }),
    pack: Type.Object(
      {
        name: Type.String({ minLength: 1, maxLength: 128 }),
        version: Type.Optional(
          Type.String({
            minLength: 1,
            maxLength: 128,
            description:
              'A registered version, or "latest" (the default): resolved at each due time.',
          }),
        ),
      },
      { additionalProperties: false },
    ),
    inputs: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    cron: Type.String({
      minLength: 1,
      maxLength: 200,
      description:
        "Cron expression: 5 fields, or 6 with seconds first (`* * * * * *` = every second); @hourly, @daily, ...",
    }),
    timeZone: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: "IANA time zone; default UTC." }),
    ),
    missedPolicy: Type.Optional(MissedPolicySchema),
    overlapPolicy: Type.Optional(OverlapPolicySchema),
    priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000 })),
    timeoutSeconds: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 31_536_000,
        description: "Run deadline of each run; may shorten the pack's spec.timeout only.",
      }),
    ),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    paused: Type.Optional(Type.Boolean({ description: "Create it paused." })),
  },
  { additionalProperties: false, title: "CreateScheduleRequest" },
);
export type CreateScheduleBody = Static<typeof CreateScheduleBodySchema>;

export const ScheduleParamsSchema = Type.Object({
  schedule: Type.String({ minLength: 1, maxLength: 64, description: "Schedule id or name." }),
});

export const ListSchedulesQuerySchema = Type.Object(
  {
    pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    pageToken: Type.Optional(Type.String({ maxLength: 512 })),
  },
  { additionalProperties: false },
);

export const ListSchedulesResponseSchema = Type.Object(
  {
    schedules: Type.Array(ScheduleSchema),
    nextPageToken: Type.Optional(Type.String({ description: "Absent on the last page." })),
  },
  { title: "ListSchedulesResponse" },
);
