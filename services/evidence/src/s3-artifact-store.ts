import { createHash, randomUUID } from "node:crypto";
import { ReadableStream } from "node:stream/web";
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type PutObjectCommandInput,
  S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { PackrunError } from "@packrun/errors";
import type { ArtifactStore, PutOptions, StoredContent } from "./artifact-store.ts";
import { verifiedContent } from "./verified-content.ts";

/** Where and how the S3-compatible artifact store keeps content. */
export interface S3ArtifactStoreOptions {
  bucket: string;
  /** Prepended to every key, e.g. `packrun/` (default: none). */
  prefix?: string;
  /** The S3 API's URL for a non-AWS server (MinIO, Ceph, ...); default: AWS for `region`. */
  endpoint?: string;
  region: string;
  /** Path-style addressing (`<endpoint>/<bucket>/<key>`), which most non-AWS servers need. */
  forcePathStyle?: boolean;
  /** Static credentials; without them the AWS SDK's default chain (env, web identity, ...) applies. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Multipart part size in bytes (S3's minimum is 5 MiB); content up to it is one PUT. */
  partSizeBytes?: number;
  /** Parts uploaded at once per artifact; each holds one part in memory. */
  uploadConcurrency?: number;
  /** Attempts per S3 request, retries of 5xx and network errors included (SDK default 3). */
  maxAttempts?: number;
}

/** S3's smallest multipart part (bar the last one). */
export const minimumPartSizeBytes = 5 * 1024 * 1024;

// CopyObject's limit: bigger content would need a multipart copy.
const maximumObjectBytes = 5 * 1024 ** 3;

const digestPattern = /^sha256:([0-9a-f]{64})$/;

/** A short, safe description of an S3 or network failure: error name, HTTP status, errno. */
function describeFailure(error: unknown): string {
  const failure = error as {
    name?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const parts = [
    failure.code ?? failure.name ?? "error",
    failure.$metadata?.httpStatusCode === undefined
      ? undefined
      : `HTTP ${failure.$metadata.httpStatusCode}`,
  ].filter((part) => part !== undefined);
  return parts.join(", ");
}

function isMissing(error: unknown): boolean {
  const failure = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return (
    failure.name === "NoSuchKey" ||
    failure.name === "NotFound" ||
    failure.$metadata?.httpStatusCode === 404
  );
}

/**
 * Content-addressed blob store in an S3-compatible bucket: content lives at
 * `<prefix>sha256/<aa>/<hex>`. An upload streams to a temporary key (multipart above the part
 * size) while it is hashed, and is copied to its digest's key only once complete and checked,
 * so a digest's key only ever holds that digest's content. Reads hash what they stream and end
 * with ARTIFACT_CORRUPTED when the bytes are not the digest's.
 */
export function createS3ArtifactStore(options: S3ArtifactStoreOptions): ArtifactStore {
  const prefix = options.prefix ?? "";
  const partSize = Math.max(options.partSizeBytes ?? 8 * 1024 * 1024, minimumPartSizeBytes);
  const client = new S3Client({
    region: options.region,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    forcePathStyle: options.forcePathStyle ?? false,
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
  });
  const bucket = options.bucket;
  const tmpPrefix = `${prefix}tmp/`;
  const keyOf = (digest: string) => {
    const hex = digestPattern.exec(digest)?.[1];
    if (hex === undefined) throw new PackrunError("REQUEST_INVALID", `bad digest ${digest}`);
    return `${prefix}sha256/${hex.slice(0, 2)}/${hex}`;
  };
  const writeFailed = (error: unknown) =>
    error instanceof PackrunError
      ? error
      : new PackrunError(
          "ARTIFACT_STORE_FAILED",
          `artifact object store could not write (${describeFailure(error)}); the artifact was not stored`,
          { cause: error },
        );

  async function put(
    content: AsyncIterable<Uint8Array>,
    putOptions: PutOptions,
  ): Promise<StoredContent> {
    const maxBytes = Math.min(putOptions.maxBytes, maximumObjectBytes);
    const tmpKey = `${tmpPrefix}${randomUUID()}.part`;
    const hash = createHash("sha256");
    let size = 0;
    // The content's own failure (too large, the uploader going away) is reported as it is.
    let sourceError: unknown;
    async function* hashed(): AsyncGenerator<Uint8Array> {
      const chunks = content[Symbol.asyncIterator]();
      for (;;) {
        let next: IteratorResult<Uint8Array>;
        try {
          next = await chunks.next();
        } catch (error) {
          sourceError = error;
          throw error;
        }
        if (next.done === true) return;
        size += next.value.length;
        if (size > maxBytes) {
          sourceError = new PackrunError(
            "ARTIFACT_TOO_LARGE",
            `artifact exceeds the ${maxBytes}-byte limit`,
          );
          throw sourceError;
        }
        hash.update(next.value);
        yield next.value;
      }
    }
    let uploaded = false;
    let upload: Upload | undefined;
    try {
      upload = new Upload({
        client,
        // A web stream: lib-storage leaves it alone when a part fails, where a Node stream is
        // destroyed and that AbortError would replace the store's own error.
        // (Node's web stream, typed as the SDK's body: the same stream in either library's types.)
        params: {
          Bucket: bucket,
          Key: tmpKey,
          Body: ReadableStream.from(hashed()) as unknown as NonNullable<
            PutObjectCommandInput["Body"]
          >,
        },
        partSize,
        queueSize: options.uploadConcurrency ?? 1,
        // Aborted below instead, so that a failing abort cannot hide why the upload failed.
        leavePartsOnError: true,
      });
      await upload.done();
      uploaded = true;
      const digest = `sha256:${hash.digest("hex")}`;
      if (putOptions.expectedDigest !== undefined && putOptions.expectedDigest !== digest) {
        throw new PackrunError(
          "ARTIFACT_DIGEST_MISMATCH",
          `artifact content has digest ${digest}, expected ${putOptions.expectedDigest}`,
        );
      }
      const key = keyOf(digest);
      // Same digest, same bytes: replacing an existing object is harmless.
      await client.send(
        new CopyObjectCommand({
          Bucket: bucket,
          Key: key,
          CopySource: `${bucket}/${tmpKey}`,
          MetadataDirective: "REPLACE",
          Metadata: { "packrun-digest": digest },
        }),
      );
      // What the store now holds under the digest must be what was hashed.
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      if (head.ContentLength !== size) {
        throw new PackrunError(
          "ARTIFACT_STORE_FAILED",
          `artifact object store holds ${head.ContentLength} bytes for ${digest}, ${size} were uploaded; the artifact was not stored`,
        );
      }
      return { digest, sizeBytes: size };
    } catch (error) {
      if (!uploaded && upload?.uploadId !== undefined) {
        // Best effort, so the parts do not linger (and cost); a bucket lifecycle rule that
        // aborts incomplete multipart uploads catches what this misses.
        await client
          .send(
            new AbortMultipartUploadCommand({
              Bucket: bucket,
              Key: tmpKey,
              UploadId: upload.uploadId,
            }),
          )
          .catch(() => {});
      }
      throw sourceError ?? writeFailed(error);
    } finally {
      // Before the upload completed, a failed one was aborted and left nothing behind.
      if (uploaded) {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: tmpKey })).catch(() => {});
      }
    }
  }

  async function* open(digest: string, chunkBytes = 64 * 1024): AsyncGenerator<Buffer> {
    const key = keyOf(digest);
    const unavailable = (error: unknown) =>
      new PackrunError(
        "ARTIFACT_STORE_UNAVAILABLE",
        `artifact content ${digest} could not be read from the object store (${describeFailure(error)})`,
        { cause: error },
      );
    let body: AsyncIterable<Uint8Array>;
    let expectedSize: number | undefined;
    try {
      const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      body = response.Body as AsyncIterable<Uint8Array>;
      expectedSize = response.ContentLength;
    } catch (error) {
      if (isMissing(error)) {
        throw new PackrunError(
          "ARTIFACT_NOT_FOUND",
          `artifact content ${digest} is missing from the object store`,
          { cause: error },
        );
      }
      throw unavailable(error);
    }
    // HTTP delivers small pieces (16 KiB): they are gathered into chunks of `chunkBytes`, so a
    // download is a few large messages rather than many small ones.
    async function* gathered(): AsyncGenerator<Buffer> {
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      try {
        for await (const chunk of body) {
          pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          pendingBytes += chunk.length;
          if (pendingBytes < chunkBytes) continue;
          const bytes = Buffer.concat(pending, pendingBytes);
          let offset = 0;
          for (; offset + chunkBytes <= bytes.length; offset += chunkBytes) {
            yield bytes.subarray(offset, offset + chunkBytes);
          }
          pending = offset < bytes.length ? [bytes.subarray(offset)] : [];
          pendingBytes = bytes.length - offset;
        }
      } catch (error) {
        throw unavailable(error);
      }
      if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
    }
    yield* verifiedContent(gathered(), digest, "the object store", expectedSize);
  }

  return {
    root: `s3://${bucket}/${prefix}`,
    put,
    open,
    async sweepTemporaryFiles(maxAgeMs) {
      let removed = 0;
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: tmpPrefix,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
        for (const object of page.Contents ?? []) {
          if (object.Key === undefined || object.LastModified === undefined) continue;
          if (Date.now() - object.LastModified.getTime() < maxAgeMs) continue;
          await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: object.Key }));
          removed++;
        }
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
      return removed;
    },
  };
}
