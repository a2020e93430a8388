// Provisioning API test kit: VAL server tokens from the server's own token endpoint (openid-client), an HTTP caller,
// and validation of requests and responses against an OpenAPI document (src/provisioning/openapi.yaml for the
// seed-named API, ss-ipp.openapi.yaml for ss-ipp) with ajv (JSON Schema 2020-12).
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
type OpenApiDocument = {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Json>; responses: Record<string, Json>; headers: Record<string, Json> };
};

// ajv-formats is CommonJS with a default export; under Node's ESM interop the plugin is the module itself.
const addFormats = ((formatsPlugin as unknown as { default?: unknown }).default ?? formatsPlugin) as (ajv: Ajv2020) => Ajv2020;

export type OpenApiContract = {
  document: OpenApiDocument;
  schemaValidator(schema: unknown): ValidateFunction;
  /** Throws unless `body` is valid for the schema; the message lists ajv's errors. */
  assertValid(schema: unknown, body: unknown, what: string): void;
  /** Checks a real response against the document: the status is documented for the operation (or its `default`), and so are type, body and headers. */
  assertDocumentedResponse(method: string, template: string, res: ApiResponse): void;
  /** Checks a request body against the operation's request body schema for its media type. */
  assertDocumentedRequest(method: string, template: string, mediaType: string, body: unknown): void;
};

/** An OpenAPI 3.1 document's contract: its Schema Objects are JSON Schema 2020-12, compiled by ajv. */
export function openApiContract(file: URL, rootId: string, options: { strictRequired?: boolean } = {}): OpenApiContract {
  const document = YAML.parse(fs.readFileSync(file, 'utf8')) as OpenApiDocument;
  // The components become the $defs of one schema resource.
  const rewrite = (value: unknown): unknown => JSON.parse(JSON.stringify(value).replaceAll('"#/components/schemas/', `"${rootId}#/$defs/`)) as unknown;
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: options.strictRequired ?? true });
  addFormats(ajv);
  ajv.addSchema({ $id: rootId, $defs: rewrite(document.components.schemas) as Json });

  const compiled = new Map<string, ValidateFunction>();
  const schemaValidator = (schema: unknown): ValidateFunction => {
    const key = JSON.stringify(schema);
    let validate = compiled.get(key);
    if (!validate) compiled.set(key, (validate = ajv.compile(rewrite(schema) as Json)));
    return validate;
  };
  const deref = <T extends Json>(value: Json): T => {
    const ref = value.$ref as string | undefined;
    if (!ref) return value as T;
    const [, section, name] = /^#\/components\/(\w+)\/(.+)$/.exec(ref) ?? [];
    return (document.components as unknown as Record<string, Record<string, T>>)[section!]![name!]!;
  };
  const assertValid = (schema: unknown, body: unknown, what: string): void => {
    const validate = schemaValidator(schema);
    if (!validate(body))
      throw new Error(`${what} does not match the OpenAPI document: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 500)}`);
  };
  const operation = (method: string, template: string): Operation => {
    const op = document.paths[template]?.[method.toLowerCase()];
    if (!op) throw new Error(`${method} ${template} is not in the OpenAPI document`);
    return op;
  };
  return {
    document,
    schemaValidator,
    assertValid,
    assertDocumentedResponse(method, template, res) {
      const op = operation(method, template);
      const declared = op.responses[String(res.status)] ?? (res.status >= 400 ? op.responses.default : undefined);
      if (!declared) throw new Error(`${method} ${template} answered ${res.status}, which the OpenAPI document does not list (${JSON.stringify(res.body)})`);
      const response = deref<{ content?: Record<string, { schema: unknown }>; headers?: Record<string, Json> }>(declared);
      if (!response.content) {
        if (res.text !== '') throw new Error(`${method} ${template} ${res.status} has a body, documented: none`);
      } else {
        const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
        const media = response.content[type];
        if (!media) throw new Error(`${method} ${template} ${res.status} answered ${type}, documented: ${Object.keys(response.content).join(', ')}`);
        assertValid(media.schema, res.body, `${method} ${template} ${res.status} body`);
      }
      for (const [name, header] of Object.entries(response.headers ?? {})) {
        const spec = deref<{ schema: unknown; required?: boolean }>(header);
        const value = res.headers.get(name);
        if (value === null && spec.required) throw new Error(`${method} ${template} ${res.status} lacks the required header ${name}`);
        if (value !== null) assertValid(spec.schema, value, `${method} ${template} ${res.status} header ${name}`);
      }
    },
    assertDocumentedRequest(method, template, mediaType, body) {
      const requestBody = operation(method, template).requestBody as { content: Record<string, { schema: unknown }> } | undefined;
      const media = requestBody?.content[mediaType];
      if (!media) throw new Error(`${method} ${template} documents no ${mediaType} request body`);
      assertValid(media.schema, body, `${method} ${template} request body`);
    },
  };
}

// The seed-named API (src/provisioning/openapi.yaml).
const seedContract = openApiContract(new URL('../../src/provisioning/openapi.yaml', import.meta.url), 'urn:seal-idms:provisioning-openapi');
export const openApiDocument = seedContract.document;
export const schemaValidator = seedContract.schemaValidator;
export const assertValid = seedContract.assertValid;
export const assertDocumentedResponse = seedContract.assertDocumentedResponse;

export type ApiResponse = { status: number; headers: Headers; body: unknown; text: string };

/** Sends one request to the provisioning API and returns the parsed answer (JSON bodies parsed). */
export async function call(
  server: TestServer,
  method: string,
  path: string,
  options: { token?: string; json?: unknown; body?: string | Buffer; headers?: Record<string, string>; base?: string } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | Buffer | undefined = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${options.base ?? server.issuer + PROVISIONING_PATH}${path}`, {
    method,
    headers,
    body: typeof body === 'string' || body === undefined ? body : new Uint8Array(body),
  });
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

// ---- TS 29.549 SS_IdmParameterProvisioning (ss-ipp)

export const SS_IPP_PATH = '/ss-ipp/v1';
// strictRequired off: TS 29.549 ValTargetUe's oneOf names required properties declared by the parent schema.
export const ssIppContract = openApiContract(new URL('../../src/provisioning/ss-ipp.openapi.yaml', import.meta.url), 'urn:seal-idms:ss-ipp-openapi', {
  strictRequired: false,
});

/** TS 29.122 ProblemDetails as ss-ipp answers it. */
export type ProblemDetails = {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance: string;
  cause: string;
  invalidParams?: { param: string; reason?: string }[];
};

export type SsIppOptions = Omit<NonNullable<Parameters<typeof call>[3]>, 'base'> & {
  /** The request is deliberately not what the document allows (a refusal test): only the response is checked. */
  invalid?: boolean;
};

/**
 * One ss-ipp operation through HTTP: unless `invalid`, its JSON request body must match the operation's request
 * schema, and its response must always match the document (status listed, media type, body, headers).
 */
export async function ssIpp(server: TestServer, method: string, template: string, path: string, options: SsIppOptions = {}): Promise<ApiResponse> {
  const mediaType = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
  const headers = { ...(options.json !== undefined ? { 'content-type': mediaType } : {}), ...options.headers };
  if (options.json !== undefined && !options.invalid)
    ssIppContract.assertDocumentedRequest(method, template, headers['content-type'] ?? mediaType, options.json);
  const res = await call(server, method, path, { ...options, headers, base: `${server.config.apiRoot}${SS_IPP_PATH}` });
  ssIppContract.assertDocumentedResponse(method, template, res);
  return res;
}

/** A client_credentials token for ss-ipp as TS 29.549 clients ask for it: by default no scope and no resource. */
export async function ssIppToken(client: oidc.Configuration, params: Record<string, string> = {}): Promise<string> {
  return (await oidc.clientCredentialsGrant(client, params)).access_token;
}
