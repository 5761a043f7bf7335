import http from "node:http";
import { fastifySSE } from "@fastify/sse";
import fastifySwagger from "@fastify/swagger";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { type ErrorCode, PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import { nameHttpSpan, traceHttpRequests } from "@packrun/telemetry";
import Fastify, { type FastifyError, LogController } from "fastify";
import { AllowedMethods } from "./allowed-methods.ts";
import type { ProblemJson } from "./api-schemas.ts";
import { createRateLimits, defaultRateLimits, type RateLimitSettings } from "./rate-limits.ts";
import { assertNoNulCharacters, problemClientErrorHandler } from "./request-hygiene.ts";
import { createValidatorCompiler } from "./request-validation.ts";
import { createSerializerCompiler } from "./response-serialization.ts";
import "./fastify-augmentation.ts";
import type { GatewayApp, GatewayContext } from "./gateway-context.ts";
import type { GatewayMetrics } from "./gateway-metrics.ts";
import { problem, problemContentType, problemFromError } from "./problem-details.ts";
import { registerApprovalRoutes } from "./routes/approval-routes.ts";
import { type ConsoleOptions, registerConsoleRoutes } from "./routes/console-routes.ts";
import { registerDeadLetterRoutes } from "./routes/dead-letter-routes.ts";
import { registerEvidenceRoutes } from "./routes/evidence-routes.ts";
import { registerLogRoutes } from "./routes/log-routes.ts";
import { registerOfflineApprovalRoutes } from "./routes/offline-approval-routes.ts";
import { registerOperationsRoutes } from "./routes/operations-routes.ts";
import { registerPackRoutes } from "./routes/pack-routes.ts";
import { registerRerunRoutes } from "./routes/rerun-routes.ts";
import { registerRunRoutes } from "./routes/run-routes.ts";
import { registerScheduleRoutes } from "./routes/schedule-routes.ts";
import { registerSigningKeyRoutes } from "./routes/signing-key-routes.ts";
import { registerSimulationRoutes } from "./routes/simulation-routes.ts";
import type { ServiceClients } from "./service-clients.ts";
import type { TokenVerifier } from "./token-verifier.ts";
import { apiVersion } from "./version.ts";

/** Everything {@link buildGatewayApp} wires together. */
export interface GatewayAppOptions {
  readonly clients: ServiceClients;
  readonly verifier: TokenVerifier;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly bodyLimitBytes: number;
  readonly heartbeatMs: number;
  /** How long a log stream waits for a just-submitted run's first event (default 10 s). */
  readonly firstEventWaitMs?: number;
  /** Requests per minute per token and per tenant (default {@link defaultRateLimits}). */
  readonly rateLimits?: RateLimitSettings;
  /** The web console at `/` (default: none). */
  readonly console?: ConsoleOptions;
}

const yamlTypes = ["application/yaml", "application/x-yaml", "text/yaml"];

/** Probes and scrapes: no span of their own, and no traces of the RPCs they make. */
const untracedPaths = ["/healthz", "/readyz", "/metrics"];

// Fastify's own request errors, each turned into a stable packrun code.
const fastifyErrorCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "REQUEST_TOO_LARGE",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "REQUEST_INVALID",
  FST_ERR_CTP_EMPTY_JSON_BODY: "REQUEST_INVALID",
  FST_ERR_CTP_INVALID_JSON_BODY: "REQUEST_INVALID",
};

function validationProblem(error: FastifyError, instance: string): ProblemJson {
  const where = error.validationContext ?? "request";
  const errors = (error.validation ?? []).map((issue) => {
    const field =
      issue.keyword === "required" && typeof issue.params.missingProperty === "string"
        ? `${issue.instancePath}/${issue.params.missingProperty}`
        : issue.keyword === "additionalProperties" &&
            typeof issue.params.additionalProperty === "string"
          ? `${issue.instancePath}/${issue.params.additionalProperty}`
          : issue.instancePath;
    const message =
      issue.keyword === "additionalProperties"
        ? "is not a known field"
        : (issue.message ?? "is invalid");
    return { path: `${where}${field}`, message };
  });
  const first = errors[0];
  return problem(
    "REQUEST_INVALID",
    first === undefined ? `the ${where} is invalid` : `${first.path}: ${first.message}`,
    { instance, errors },
  );
}

/**
 * The gateway's Fastify app, not yet listening: schemas validate every request, errors leave as
 * RFC 9457 problem documents, and routes that declare a scope get a verified principal.
 */
export async function buildGatewayApp(options: GatewayAppOptions): Promise<GatewayApp> {
  const { metrics } = options;
  const app: GatewayApp = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.bodyLimitBytes,
    // Request ids in every log line; honour a caller's id for tracing across systems.
    requestIdHeader: "x-request-id",
    genReqId: () => crypto.randomUUID(),
    // One line per request from the onResponse hook below, with route and status.
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 256 },
    // 431 for oversized headers (and 400 for broken HTTP) as problem documents too.
    clientErrorHandler: problemClientErrorHandler,
    // Fastify's own server, with every request in a SERVER span (trace context from the caller).
    serverFactory: (handler, serverOptions) => {
      const server = http.createServer(traceHttpRequests(handler, { untracedPaths }));
      // What Fastify sets on a server it creates itself (its defaults are filled in by now).
      const { keepAliveTimeout, requestTimeout, connectionTimeout } = serverOptions;
      if (typeof keepAliveTimeout === "number") server.keepAliveTimeout = keepAliveTimeout;
      if (typeof requestTimeout === "number") server.requestTimeout = requestTimeout;
      if (typeof connectionTimeout === "number") server.setTimeout(connectionTimeout);
      return server;
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(createValidatorCompiler());
  app.setSerializerCompiler(createSerializerCompiler());
  // Only JSON and YAML bodies are understood; anything else is UNSUPPORTED_MEDIA_TYPE.
  app.removeContentTypeParser("text/plain");

  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "packrun API",
        version: apiVersion,
        license: { name: "Apache-2.0", identifier: "Apache-2.0" },
        description:
          "Plan, simulate and run Task Packs; follow their logs; fetch artifacts, attestations and evidence bundles. Errors are RFC 9457 problem documents whose `code` is listed in docs/errors.md.",
      },
      // Relative: the API is served by the gateway that serves this document, wherever it is.
      servers: [{ url: "/", description: "The gateway serving this document" }],
      components: {
        securitySchemes: {
          bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
        },
      },
      tags: [
        { name: "runs", description: "Submit, follow, approve, cancel, rerun and resume runs" },
        { name: "schedules", description: "Runs of a registered pack on a cron expression" },
        { name: "evidence", description: "Artifacts, attestations, bundles, keys" },
        { name: "packs", description: "The tenant's pack registry" },
        { name: "simulations", description: "Dry runs" },
        {
          name: "dead-letters",
          description: "Steps that failed permanently: list and re-drive them",
        },
        { name: "operations", description: "Health, readiness, metrics" },
      ],
    },
  });
  await app.register(fastifySSE, { heartbeatInterval: options.heartbeatMs });

  app.addContentTypeParser(
    yamlTypes,
    { parseAs: "string", bodyLimit: options.bodyLimitBytes },
    (_request, body, done) => done(null, { manifest: String(body) }),
  );

  const allowed = new AllowedMethods();
  app.addHook("onRoute", (route) => allowed.add(route.method, route.url));

  app.decorateRequest("principal", undefined);
  // Routing is done: the span is `METHOD /route/template`.
  app.addHook("onRequest", async (request) => {
    nameHttpSpan(request.raw, request.routeOptions.url);
  });
  const rateLimit = createRateLimits(options.rateLimits ?? defaultRateLimits);
  app.addHook("onRequest", async (request, reply) => {
    const scope = request.routeOptions.config.scope;
    if (scope === undefined) return;
    const principal = await options.verifier.verify(request.headers.authorization);
    await rateLimit(principal, request.headers.authorization, reply);
    if (!principal.scopes.has(scope))
      throw new PackrunError("PERMISSION_DENIED", `this operation needs the ${scope} scope`);
    request.principal = principal;
    request.log = request.log.child({ tenant: principal.tenant, subject: principal.subject });
  });

  // Before schema validation, so that NUL is refused whatever the route's schema allows.
  app.addHook("preValidation", async (request) => {
    assertNoNulCharacters({
      body: request.body,
      querystring: request.query,
      params: request.params,
    });
  });

  app.addHook("onResponse", async (request, reply) => {
    metrics.requestDuration.observe(
      {
        method: request.method,
        route: request.routeOptions.url ?? "unmatched",
        status_code: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      "request",
    );
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const instance = request.url.split("?")[0] ?? request.url;
    let body: ProblemJson;
    if (error.validation !== undefined) body = validationProblem(error, instance);
    else if (error.code !== undefined && fastifyErrorCodes[error.code] !== undefined)
      body = problem(fastifyErrorCodes[error.code] ?? "REQUEST_INVALID", error.message, {
        instance,
      });
    else body = problemFromError(error, instance);
    if (
      body.code === "APPROVAL_TOKEN_MISMATCH" ||
      body.code === "APPROVAL_STALE" ||
      body.code === "APPROVAL_TOKEN_REUSED"
    )
      metrics.approvalsRefused.inc({ code: body.code });
    if (body.status >= 500) request.log.error({ err: error }, "request failed");
    else if (body.status === 401 || body.status === 403)
      request.log.warn({ code: body.code, detail: body.detail }, "request refused");
    if (body.code === "UNAUTHENTICATED") reply.header("www-authenticate", 'Bearer realm="packrun"');
    return reply.code(body.status).type(problemContentType).send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0] ?? "";
    const methods = allowed.for(path);
    if (methods.length > 0)
      return reply
        .code(405)
        .header("allow", methods.join(", "))
        .type(problemContentType)
        .send(
          problem(
            "METHOD_NOT_ALLOWED",
            `${path} does not answer ${request.method}; it answers ${methods.join(", ")}`,
            { instance: path },
          ),
        );
    return reply
      .code(404)
      .type(problemContentType)
      .send(
        problem("ROUTE_NOT_FOUND", `no endpoint ${request.method} ${path}`, { instance: path }),
      );
  });

  const context: GatewayContext = {
    clients: options.clients,
    logger: options.logger,
    heartbeatMs: options.heartbeatMs,
    firstEventWaitMs: options.firstEventWaitMs ?? 10_000,
  };
  registerRunRoutes(app, context);
  registerRerunRoutes(app, context);
  registerDeadLetterRoutes(app, context);
  registerScheduleRoutes(app, context);
  registerApprovalRoutes(app, context);
  registerOfflineApprovalRoutes(app, context);
  registerLogRoutes(app, context);
  registerEvidenceRoutes(app, context);
  registerSigningKeyRoutes(app, context);
  registerSimulationRoutes(app, context);
  registerPackRoutes(app, context);
  registerOperationsRoutes(app, context, metrics);
  await registerConsoleRoutes(app, context, options.console ?? {});
  return app;
}
