// A small typed GraphQL client over fetch, for the documents GraphQL Code Generator made from
// `documents/`. Each request names its document by hash only (Apollo's persisted-query
// extension): a server with GRAPHQL_TRUSTED_DOCUMENTS runs it from the manifest; a server with
// automatic persisted queries answers PersistedQueryNotFound the first time, and the client
// sends the document's text along once (the text of `persisted-documents.json`, whose SHA-256
// is the hash).
import { readFileSync } from "node:fs";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";

// Beside the generated code (tsc copies it into dist/gql with the rest).
const documents: Record<string, string> = JSON.parse(
  readFileSync(new URL("./gql/persisted-documents.json", import.meta.url), "utf8"),
);

export interface GraphQLErrorEntry {
  message: string;
  extensions?: { code?: string; [key: string]: unknown };
}

/** The request failed: HTTP status and GraphQL errors (each with its `extensions.code`). */
export class GraphQLRequestError extends Error {
  constructor(
    readonly status: number,
    readonly errors: GraphQLErrorEntry[],
  ) {
    super(errors.map((e) => `${e.extensions?.code ?? "ERROR"}: ${e.message}`).join("; "));
  }

  get code(): string | undefined {
    return this.errors[0]?.extensions?.code;
  }
}

export interface ClientOptions {
  /** The api's base address, for example `http://127.0.0.1:8080`. */
  url: string;
  /** A bearer token (omit for the operations that answer without signing in). */
  token?: string;
}

function hashOf(document: TypedDocumentNode<unknown, unknown>): string {
  const meta = (document as { __meta__?: { hash?: string } }).__meta__;
  if (!meta?.hash) {
    throw new Error("the document has no hash: generate it with persistedDocuments on");
  }
  return meta.hash;
}

/** Runs a generated document; resolves with its typed `data`, or throws GraphQLRequestError. */
export async function execute<TResult, TVariables>(
  options: ClientOptions,
  document: TypedDocumentNode<TResult, TVariables>,
  ...[variables]: TVariables extends Record<string, never> ? [] | [TVariables] : [TVariables]
): Promise<TResult> {
  const hash = hashOf(document as TypedDocumentNode<unknown, unknown>);
  const extensions = {
    persistedQuery: { version: 1, sha256Hash: hash.replace(/^sha256:/, "") },
  };
  const send = async (query?: string) => {
    const response = await fetch(`${options.url}/graphql`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json",
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
      body: JSON.stringify({ query, variables: variables ?? {}, extensions }),
    });
    const body = (await response.json()) as { data?: TResult | null; errors?: GraphQLErrorEntry[] };
    return { status: response.status, body };
  };
  let { status, body } = await send();
  if (body.errors?.[0]?.extensions?.code === "PERSISTED_QUERY_NOT_FOUND") {
    const text = documents[hash];
    if (text === undefined) {
      throw new Error(`${hash} is not in persisted-documents.json: generate again`);
    }
    ({ status, body } = await send(text));
  }
  if (body.errors?.length || body.data == null) {
    throw new GraphQLRequestError(status, body.errors ?? [{ message: `HTTP ${status}` }]);
  }
  return body.data;
}

/** One captured email, as `GET /dev/mail` answers (outside production, file/memory email). */
export interface CapturedMail {
  id: string;
  partnerId: string | null;
  template: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  links: string[];
  status: "PENDING" | "SENT" | "DEAD";
  createdAt: string;
  sentAt: string | null;
}

/** The mail captured for `to`, oldest first. */
export async function capturedMail(url: string, to: string): Promise<CapturedMail[]> {
  const response = await fetch(`${url}/dev/mail?to=${encodeURIComponent(to)}`);
  if (!response.ok) {
    throw new Error(`GET /dev/mail answered ${response.status}: ${await response.text()}`);
  }
  return ((await response.json()) as { messages: CapturedMail[] }).messages;
}
