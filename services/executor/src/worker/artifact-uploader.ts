import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import {
  EvidenceService,
  type PutArtifactRequest,
  PutArtifactRequestSchema,
} from "@packrun/proto/evidence/v1";
import { errorCodeHeader, type ServiceTls, serviceTransport } from "@packrun/rpc-server";
import { rpcClientTracing } from "@packrun/telemetry";
import { openFileInside } from "../runtime/contained-path.ts";

/** One artifact a step produced, hashed by the runtime. */
export interface ArtifactToUpload {
  tenant: string;
  runId: string;
  stepId: string;
  name: string;
  /** Path relative to the attempt's workdir, as declared. */
  sourcePath: string;
  /** The file on this machine. */
  filePath: string;
  /** The attempt's workdir: the file must still be a regular file inside it. */
  workdir: string;
  /** `sha256:<hex>` the runtime computed; the store must arrive at the same. */
  digest: string;
}

/** Stores artifacts in the evidence service's content-addressed store. */
export interface ArtifactUploader {
  /** Rejects with a message naming the artifact and the store's stable error code. */
  upload(artifact: ArtifactToUpload): Promise<void>;
  close(): void;
}

/** An uploader streaming files to EvidenceService.PutArtifact in 64 KiB chunks. */
export function createArtifactUploader(evidenceUrl: string, tls?: ServiceTls): ArtifactUploader {
  const { transport, sessions } = serviceTransport(evidenceUrl, tls, {
    interceptors: [rpcClientTracing()],
  });
  const client = createClient(EvidenceService, transport);
  return {
    async upload(artifact) {
      async function* parts(): AsyncGenerator<PutArtifactRequest> {
        yield create(PutArtifactRequestSchema, {
          part: {
            case: "header",
            value: {
              tenant: artifact.tenant,
              runId: artifact.runId,
              stepId: artifact.stepId,
              name: artifact.name,
              type: "file",
              sourcePath: artifact.sourcePath,
              expectedDigest: artifact.digest,
            },
          },
        });
        // Opened again the safe way: whatever is left of the step (a process that escaped its
        // group) could have swapped the file for a FIFO or a symlink since it was hashed.
        const opened = await openFileInside(
          artifact.workdir,
          artifact.filePath,
          `artifact "${artifact.name}" (${artifact.sourcePath})`,
        );
        if (!opened) throw new Error(`artifact "${artifact.name}" disappeared before its upload`);
        for await (const chunk of opened.handle.createReadStream({
          highWaterMark: 64 * 1024,
        })) {
          yield create(PutArtifactRequestSchema, {
            part: { case: "chunk", value: chunk as Buffer },
          });
        }
      }
      try {
        await client.putArtifact(parts(), { timeoutMs: 10 * 60_000 });
      } catch (error) {
        const connectError = ConnectError.from(error);
        const code = connectError.metadata.get(errorCodeHeader);
        throw new Error(
          `artifact "${artifact.name}" could not be stored${code ? ` (${code})` : ""}: ${connectError.rawMessage}`,
        );
      }
    },
    close: () => sessions.abort(),
  };
}
