/**
 * packrun's own services, each with one certificate (its subject's common name) signed by the
 * deployment's internal CA. Only these identities may call the control-plane RPCs.
 */
export const serviceIdentities = ["gateway", "planner", "executor", "evidence"] as const;

/** One service identity: the CN of its certificate. */
export type ServiceIdentity = (typeof serviceIdentities)[number];

/** True when `value` names one of packrun's services. */
export function isServiceIdentity(value: string): value is ServiceIdentity {
  return (serviceIdentities as readonly string[]).includes(value);
}
