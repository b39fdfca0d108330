// gRPC errors with their google.rpc details decoded, and the scheduler's NoValidHost explanation.
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  type BadRequest_FieldViolation,
  PreconditionFailureSchema,
  type PreconditionFailure_Violation,
  QuotaFailureSchema,
  type QuotaFailure_Violation,
  type ResourceInfo,
  ResourceInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import type { Explanation } from "./gen/drover/v1/types_pb.js";
import { type Server, VmState } from "./gen/drover/v1/types_pb.js";

/** A failed call: its gRPC code and message with the google.rpc details decoded. */
export class DroverError extends Error {
  override readonly name = "DroverError";
  constructor(
    readonly code: Code,
    readonly rawMessage: string,
    /** From google.rpc.BadRequest (INVALID_ARGUMENT): which field, and why. */
    readonly fieldViolations: BadRequest_FieldViolation[],
    /** From google.rpc.ResourceInfo (NOT_FOUND): what was not found. */
    readonly resource: ResourceInfo | undefined,
    readonly preconditionViolations: PreconditionFailure_Violation[],
    readonly quotaViolations: QuotaFailure_Violation[],
    override readonly cause: ConnectError,
  ) {
    super(`drover: ${Code[code]}: ${rawMessage}`);
  }
}

/** Any error from a call as a DroverError (non-gRPC errors become UNKNOWN). */
export function decodeError(err: unknown): DroverError {
  if (err instanceof DroverError) return err;
  const ce = ConnectError.from(err);
  return new DroverError(
    ce.code,
    ce.rawMessage,
    ce.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations),
    ce.findDetails(ResourceInfoSchema)[0],
    ce.findDetails(PreconditionFailureSchema).flatMap((d) => d.violations),
    ce.findDetails(QuotaFailureSchema).flatMap((d) => d.violations),
    ce,
  );
}

/** The scheduler's explanation when the server went to ERROR because no host could take it. */
export function noValidHost(s: Server): Explanation | undefined {
  return s.vmState === VmState.ERROR ? s.schedulerExplanation : undefined;
}

/** The explanation in lines: the summary, then each filter that rejected hosts. */
export function explainNoValidHost(x: Explanation): string {
  const lines = [x.summary];
  for (const r of x.rejections.filter((r) => r.rejected > 0n)) {
    const sample = r.sampleReasons[0];
    lines.push(`  ${r.filter} rejected ${r.rejected}${sample ? ` (${sample})` : ""}`);
  }
  return lines.join("\n");
}
