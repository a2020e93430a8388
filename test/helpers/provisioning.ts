// Provisioning API test kit: VAL server tokens from the server's own token endpoint (openid-client), an HTTP caller,
// and validation of every response against src/provisioning/openapi.yaml with ajv (JSON Schema 2020-12).
import fs from 'node:fs';
import * as oidc from 'openid-client';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import formatsPlugin from 'ajv-formats';
import YAML from 'yaml';
import type { TestServer } from './server.ts';

export const PROVISIONING_PATH = '/ss-idms-provisioning/v1';
export const PROVISIONING_SCOPE = '3gpp:seal:idm:provisioning';

type Json = Record<string, unknown>;
type Operation = { responses: Record<string, Json>; requestBody?: Json };

export const openApiDocument = YAML.parse(fs.readFileSync(new URL('../../src/provisioning/openapi.yaml', import.meta.url), 'utf8')) as {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Json>; responses: Record<string, Json>; headers: Record<string, Json> };
};

// OpenAPI 3.1 Schema Objects are JSON Schema 2020-12: the components become the $defs of one schema resource.
const ROOT_ID = 'urn:seal-idms:provisioning-openapi';
const rewrite = (value: unknown): unknown =>
  JSON.parse(JSON.stringify(value).replaceAll('"#/components/schemas/', `"${ROOT_ID}#/$defs/`)) as unknown;

// ajv-formats is CommonJS with a default export; under Node's ESM interop the plugin is the module itself.
const addFormats = ((formatsPlugin as unknown as { default?: unknown }).default ?? formatsPlugin) as (ajv: Ajv2020) => Ajv2020;
const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
ajv.addSchema({ $id: ROOT_ID, $defs: rewrite(openApiDocument.components.schemas) as Json });

const compiled = new Map<string, ValidateFunction>();
export function schemaValidator(schema: unknown): ValidateFunction {
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (!validate) compiled.set(key, (validate = ajv.compile(rewrite(schema) as Json)));
  return validate;
}

function deref<T extends Json>(value: Json): T {
  const ref = value.$ref as string | undefined;
  if (!ref) return value as T;
  const [, section, name] = /^#\/components\/(\w+)\/(.+)$/.exec(ref) ?? [];
  return (openApiDocument.components as unknown as Record<string, Record<string, T>>)[section!]![name!]!;
}

/** Throws unless `body` is valid for the schema; the message lists ajv's errors. */
export function assertValid(schema: unknown, body: unknown, what: string): void {
  const validate = schemaValidator(schema);
  if (!validate(body)) throw new Error(`${what} does not match the OpenAPI document: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 500)}`);
}

/** Checks a real response against the document: the status is documented for the operation, and so are type, body and headers. */
export function assertDocumentedResponse(method: string, template: string, res: ApiResponse): void {
  const operation = openApiDocument.paths[template]?.[method.toLowerCase()];
  if (!operation) throw new Error(`${method} ${template} is not in the OpenAPI document`);
  const declared = operation.responses[String(res.status)];
  if (!declared) throw new Error(`${method} ${template} answered ${res.status}, which the OpenAPI document does not list (${JSON.stringify(res.body)})`);
  const response = deref<{ content: Record<string, { schema: unknown }>; headers?: Record<string, Json> }>(declared);
  const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
  const media = response.content[type];
  if (!media) throw new Error(`${method} ${template} ${res.status} answered ${type}, documented: ${Object.keys(response.content).join(', ')}`);
  assertValid(media.schema, res.body, `${method} ${template} ${res.status} body`);
  for (const [name, header] of Object.entries(response.headers ?? {})) {
    const value = res.headers.get(name);
    if (value !== null) assertValid(deref<{ schema: unknown }>(header).schema, value, `${method} ${template} ${res.status} header ${name}`);
  }
}

export type ApiResponse = { status: number; headers: Headers; body: unknown; text: string };

/** Sends one request to the provisioning API and returns the parsed answer (JSON bodies parsed). */
export async function call(
  server: TestServer,
  method: string,
  path: string,
  options: { token?: string; json?: unknown; body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | Buffer | undefined = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${server.issuer}${PROVISIONING_PATH}${path}`, { method, headers, body: typeof body === 'string' || body === undefined ? body : new Uint8Array(body) });
  const text = await res.text();
  const isJson = /json/.test(res.headers.get('content-type') ?? '');
  return { status: res.status, headers: res.headers, body: isJson && text ? (JSON.parse(text) as unknown) : text, text };
}

/** call() for a documented operation: the response must match the OpenAPI document. */
export async function callDocumented(
  server: TestServer,
  method: string,
  template: string,
  path: string,
  options: Parameters<typeof call>[3] = {},
): Promise<ApiResponse> {
  const res = await call(server, method, path, options);
  assertDocumentedResponse(method, template, res);
  return res;
}

export async function valServerClient(server: TestServer, clientId: string, secret: string): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(server.issuer), clientId, secret, undefined, { execute: [oidc.allowInsecureRequests] });
}

/** A client_credentials access token for the provisioning API (RFC 8707 resource = its base URL). */
export async function provisioningToken(client: oidc.Configuration, server: TestServer, scope: string | undefined = PROVISIONING_SCOPE): Promise<string> {
  const params: Record<string, string> = { resource: `${server.config.issuer}${PROVISIONING_PATH}` };
  if (scope !== undefined) params.scope = scope;
  return (await oidc.clientCredentialsGrant(client, params)).access_token;
}

export type Problem = { status: number; title: string; cause: string; detail?: string; invalidParams?: { param: string; reason?: string }[]; result: string };

export function userIds(prefix: string, n: number, from = 0): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${String(from + i).padStart(7, '0')}`);
}
