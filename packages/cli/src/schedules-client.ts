/** The gateway's schedule routes (/api/schedules) as the CLI calls them. */
import type {
  CreateScheduleBody,
  ListSchedulesResponseSchema,
  ScheduleJson,
} from "@packrun/gateway/schedule-schemas";
import type { Static } from "typebox";
import { apiPath, type GatewayClient } from "./gateway-client.ts";

/** A schedule as the gateway reports it. */
export type Schedule = ScheduleJson;
/** Body of POST /api/schedules. */
export type CreateScheduleRequest = CreateScheduleBody;
/** Answer of GET /api/schedules. */
export type ListSchedulesResponse = Static<typeof ListSchedulesResponseSchema>;

/** POST /api/schedules */
export function createSchedule(
  client: GatewayClient,
  body: CreateScheduleRequest,
): Promise<Schedule> {
  return client.json("POST", "/api/schedules", { json: body });
}

/** GET /api/schedules */
export function listSchedules(
  client: GatewayClient,
  query: { pageSize?: number; pageToken?: string },
): Promise<ListSchedulesResponse> {
  return client.json("GET", "/api/schedules", { query });
}

/** GET /api/schedules/{id or name} */
export function getSchedule(client: GatewayClient, schedule: string): Promise<Schedule> {
  return client.json("GET", apiPath("api", "schedules", schedule));
}

/** POST /api/schedules/{id or name}/pause or /resume */
export function setSchedulePaused(
  client: GatewayClient,
  schedule: string,
  paused: boolean,
): Promise<Schedule> {
  return client.json("POST", apiPath("api", "schedules", schedule, paused ? "pause" : "resume"), {
    json: {},
  });
}

/** DELETE /api/schedules/{id or name} */
export async function deleteSchedule(client: GatewayClient, schedule: string): Promise<void> {
  await client.request("DELETE", apiPath("api", "schedules", schedule));
}
