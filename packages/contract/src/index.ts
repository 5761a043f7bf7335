export {
  failedStepStates,
  isRunState,
  isStepState,
  type RunState,
  runStates,
  type StepState,
  stepStates,
  terminalRunStates,
  terminalStepStates,
} from "./states.ts";
export { isTenantName, tenantNamePattern, tenantNameRule } from "./tenant-name.ts";
