// Our ss-ipp OpenAPI document against the 3GPP one (TS 29.549 V18.4.0 TS29549_SS_IdmParameterProvisioning.yaml, with
// ValTargetUe from TS29549_SS_UserProfileRetrieval.yaml, ProblemDetails from TS29122_CommonData.yaml and
// SupportedFeatures from TS29571_CommonData.yaml): the facts below were read off those files, not copied from ours.
import { ssIppContract } from './helpers/provisioning.ts';

type Json = Record<string, unknown>;
const doc = ssIppContract.document as unknown as {
  openapi: string;
  info: Json;
  servers: { url: string }[];
  paths: Record<string, Record<string, Json>>;
  components: Record<string, Record<string, Json>>;
};

// ---- Facts of the 3GPP file (jdegre/5GC_APIs commit a73bceee, TS 29.549 V18.4.0)
const THREEGPP = {
  title: 'SS_IdmParameterProvisioning',
  serverUrl: '{apiRoot}/ss-ipp/v1',
  operations: {
    '/configurations': {
      post: {
        operationId: 'CreateValServiceConf',
        request: ['application/json', 'VALServicesConfig'],
        statuses: ['201', '400', '401', '403', '404', '411', '413', '415', '429', '500', '503', 'default'],
      },
      get: { operationId: 'RetrieveValServiceConf', statuses: ['200', '307', '308', '400', '401', '403', '404', '406', '429', '500', '503', 'default'] },
    },
    '/configurations/{confId}': {
      get: { operationId: 'RetrieveIndValServicesConf', statuses: ['200', '307', '308', '400', '401', '403', '404', '406', '429', '500', '503', 'default'] },
      put: {
        operationId: 'UpdateIndValServicesConf',
        request: ['application/json', 'VALServicesConfig'],
        statuses: ['200', '204', '307', '308', '400', '401', '403', '404', '411', '413', '415', '429', '500', '503', 'default'],
      },
      patch: {
        operationId: 'ModifyIndValServicesConf',
        request: ['application/merge-patch+json', 'VALServicesConfigPatch'],
        statuses: ['200', '204', '307', '308', '400', '401', '403', '404', '411', '413', '415', '429', '500', '503', 'default'],
      },
      delete: { operationId: 'DeleteIndValServicesConf', statuses: ['204', '307', '308', '400', '401', '403', '404', '429', '500', '503', 'default'] },
    },
  } as Record<string, Record<string, { operationId: string; request?: [string, string]; statuses: string[] }>>,
  // Success answers with a VALServicesConfig body (the collection GET: an array of them).
  successBodies: [
    ['/configurations', 'post', '201'],
    ['/configurations/{confId}', 'get', '200'],
    ['/configurations/{confId}', 'put', '200'],
    ['/configurations/{confId}', 'patch', '200'],
  ],
  noBody: [
    ['/configurations/{confId}', 'put', '204'],
    ['/configurations/{confId}', 'patch', '204'],
    ['/configurations/{confId}', 'delete', '204'],
  ],
  schemas: {
    VALServicesConfig: { required: ['valServerId', 'valSvcConf'], properties: ['valServerId', 'valSvcConf', 'suppFeat'] },
    VALServiceParams: { required: ['valServiceId', 'idList'], properties: ['valServiceId', 'idList'] },
    VALServicesConfigPatch: { required: [], properties: ['valSvcConf'] },
    ValTargetUe: { required: [], properties: ['valUserId', 'valUeId'] },
    ProblemDetails: { required: [], properties: ['type', 'title', 'status', 'detail', 'instance', 'cause', 'invalidParams', 'supportedFeatures'] },
    InvalidParam: { required: ['param'], properties: ['param', 'reason'] },
  } as Record<string, { required: string[]; properties: string[] }>,
  errorStatuses: ['400', '401', '403', '404', '406', '411', '413', '415', '429', '500', '503'],
};

const deref = (value: Json): Json => {
  const ref = value.$ref as string | undefined;
  if (!ref) return value;
  const [, section, name] = /^#\/components\/(\w+)\/(.+)$/.exec(ref)!;
  return doc.components[section!]![name!]!;
};
const schemaName = (schema: Json) => String(schema.$ref).replace('#/components/schemas/', '');
const operation = (path: string, method: string) =>
  doc.paths[path]![method]! as { operationId: string; requestBody?: Json; responses: Record<string, Json>; parameters?: Json[] };

test('the API is named and rooted as in TS 29.549', () => {
  expect(doc.info.title).toBe(THREEGPP.title);
  expect(doc.servers.map((s) => s.url)).toEqual([THREEGPP.serverUrl]);
});

test('the same paths and operations, with the 3GPP operationIds', () => {
  expect(Object.keys(doc.paths).sort()).toEqual(Object.keys(THREEGPP.operations).sort());
  for (const [path, methods] of Object.entries(THREEGPP.operations)) {
    const ours = Object.keys(doc.paths[path]!)
      .filter((k) => k !== 'parameters')
      .sort();
    expect([path, ours]).toEqual([path, Object.keys(methods).sort()]);
    for (const [method, fact] of Object.entries(methods)) expect(operation(path, method).operationId).toBe(fact.operationId);
  }
});

test('each operation lists exactly the 3GPP status codes', () => {
  for (const [path, methods] of Object.entries(THREEGPP.operations)) {
    for (const [method, fact] of Object.entries(methods)) {
      expect([path, method, Object.keys(operation(path, method).responses).sort()]).toEqual([path, method, [...fact.statuses].sort()]);
    }
  }
});

test('request bodies: the 3GPP media types and schemas, required', () => {
  for (const [path, methods] of Object.entries(THREEGPP.operations)) {
    for (const [method, fact] of Object.entries(methods)) {
      const body = operation(path, method).requestBody as { required?: boolean; content: Record<string, { schema: Json }> } | undefined;
      if (!fact.request) {
        expect([path, method, body]).toEqual([path, method, undefined]);
        continue;
      }
      const [mediaType, schema] = fact.request;
      expect(body!.required).toBe(true);
      expect(Object.keys(body!.content)).toEqual([mediaType]);
      expect(schemaName(body!.content[mediaType]!.schema)).toBe(schema);
    }
  }
});

test('success bodies are VALServicesConfig (an array of them for the collection), 204s have none, 201 has Location', () => {
  for (const [path, method, status] of THREEGPP.successBodies) {
    const res = deref(operation(path!, method!).responses[status!]!) as { content: Record<string, { schema: Json }> };
    expect(Object.keys(res.content)).toEqual(['application/json']);
    expect(schemaName(res.content['application/json']!.schema)).toBe('VALServicesConfig');
  }
  const list = deref(operation('/configurations', 'get').responses['200']!) as { content: Record<string, { schema: Json }> };
  const array = list.content['application/json']!.schema as { type: string; items: Json };
  expect(array.type).toBe('array');
  expect(schemaName(array.items)).toBe('VALServicesConfig');
  for (const [path, method, status] of THREEGPP.noBody) expect(deref(operation(path!, method!).responses[status!]!).content).toBeUndefined();
  const created = deref(operation('/configurations', 'post').responses['201']!) as { headers: Record<string, { required: boolean }> };
  expect(created.headers.Location!.required).toBe(true);
});

test('the collection GET takes val-server-id and config-ids (an array, at least one), the document paths a confId', () => {
  const params = (operation('/configurations', 'get').parameters ?? []).map(deref) as { name: string; in: string; required: boolean; schema: Json }[];
  expect(params.map((p) => [p.name, p.in, p.required]).sort()).toEqual([
    ['config-ids', 'query', false],
    ['val-server-id', 'query', false],
  ]);
  expect(params.find((p) => p.name === 'config-ids')!.schema).toMatchObject({ type: 'array', minItems: 1, items: { type: 'string' } });
  const pathParams = ((doc.paths['/configurations/{confId}']!.parameters as unknown as Json[] | undefined) ?? []).map(deref) as {
    name: string;
    in: string;
    required: boolean;
  }[];
  expect(pathParams.map((p) => [p.name, p.in, p.required])).toEqual([['confId', 'path', true]]);
});

test('the 3GPP schema names exist with the same required fields and properties', () => {
  for (const [name, fact] of Object.entries(THREEGPP.schemas)) {
    const schema = doc.components.schemas![name] as { required?: string[]; properties: Json } | undefined;
    expect([name, schema === undefined]).toEqual([name, false]);
    expect([name, [...(schema!.required ?? [])].sort()]).toEqual([name, [...fact.required].sort()]);
    expect([name, Object.keys(schema!.properties).sort()]).toEqual([name, [...fact.properties].sort()]);
  }
  // TS 29.549: ValTargetUe is exactly one of the two; valSvcConf and idList have at least one element.
  expect(doc.components.schemas!.ValTargetUe!.oneOf).toEqual([{ required: ['valUserId'] }, { required: ['valUeId'] }]);
  const config = doc.components.schemas!.VALServicesConfig as { properties: Record<string, Json> };
  expect(config.properties.valSvcConf).toMatchObject({ type: 'array', minItems: 1, items: { $ref: '#/components/schemas/VALServiceParams' } });
  expect(config.properties.suppFeat).toEqual({ $ref: '#/components/schemas/SupportedFeatures' });
  expect((doc.components.schemas!.VALServiceParams as { properties: Record<string, Json> }).properties.idList).toMatchObject({
    type: 'array',
    minItems: 1,
    items: { $ref: '#/components/schemas/ValTargetUe' },
  });
  expect((doc.components.schemas!.VALServicesConfigPatch as { properties: Record<string, Json> }).properties.valSvcConf).toMatchObject({
    type: 'array',
    minItems: 1,
  });
  // TS 29.571 SupportedFeatures: hexadecimal digits.
  expect(doc.components.schemas!.SupportedFeatures).toMatchObject({ type: 'string', pattern: '^[A-Fa-f0-9]*$' });
});

test('every error status answers TS 29.122 ProblemDetails as application/problem+json', () => {
  for (const status of THREEGPP.errorStatuses) {
    const res = doc.components.responses![status] as { content: Record<string, { schema: Json }> };
    expect([status, Object.keys(res.content)]).toEqual([status, ['application/problem+json']]);
    expect(schemaName(res.content['application/problem+json']!.schema)).toBe('ProblemDetails');
  }
  for (const status of ['307', '308'])
    expect((doc.components.responses![status] as { headers: Record<string, { required: boolean }> }).headers.Location!.required).toBe(true);
});

test('security: OAuth 2.0 client credentials with no scope required (TS 29.549 defines none)', () => {
  const scheme = doc.components.securitySchemes!.oAuth2ClientCredentials as { type: string; flows: { clientCredentials: { scopes: Json } } };
  expect(scheme.type).toBe('oauth2');
  expect(scheme.flows.clientCredentials.scopes).toEqual({});
  expect((doc as unknown as { security: Json[] }).security).toEqual([{ oAuth2ClientCredentials: [] }]);
});

test("the document's request examples are valid for their schemas", () => {
  let examples = 0;
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const content = (op as { requestBody?: { content: Record<string, { examples?: Record<string, { value: unknown }> }> } }).requestBody?.content ?? {};
      for (const [mediaType, media] of Object.entries(content)) {
        for (const [name, { value }] of Object.entries(media.examples ?? {})) {
          ssIppContract.assertDocumentedRequest(method.toUpperCase(), path, mediaType, value);
          examples++;
          expect(name).toBeTruthy();
        }
      }
    }
  }
  expect(examples).toBeGreaterThanOrEqual(3);
});
