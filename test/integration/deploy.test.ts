// examples/deploy (issue #33, containers): what can be checked without a cluster or a Docker daemon.
// - Every Kubernetes document under examples/deploy/k8s against its schema, twice: the OpenAPI schemas that
//   kubernetes-models and @kubernetes-models/keda ship (compiled ajv validators: types, required fields, enums),
//   and, since those schemas allow unknown fields, TypeScript's excess-property check against the same
//   packages' declared types (a misspelled field anywhere in a document is an error).
// - That the files agree: the probes and the served port, the grace period and close()'s timeout, the KEDA
//   trigger and the app's stream and group, the Dockerfile's user and the pods' security context.
// - The Dockerfile's promises (non-root, npm ci --omit=dev, the journal's directory owned by the user, node as
//   PID 1), read from the file.
// - The app itself, run as the container runs it (node dist/examples/deploy/app.js, the StatefulSet's
//   environment) against the suite's Redis: ready, processing, SIGTERM drains and exits 0 within the grace.
// Each checker is shown to fail on a mutated copy.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Secret, Service } from 'kubernetes-models/v1';
import { StatefulSet } from 'kubernetes-models/apps/v1';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { redisProducer } from 'ringpool/redis';
import { freePort } from '../net.js';
import { scratch, url } from '../redis-helpers.js';

const root = new URL('../..', import.meta.url).pathname;
const deployDir = join(root, 'examples/deploy');
const k8sDir = join(deployDir, 'k8s');
const appJs = 'dist/examples/deploy/app.js';

type Obj = Record<string, any>;
interface Doc {
  file: string;
  index: number;
  obj: Obj;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading the files.

function loadDocs(): Doc[] {
  const docs: Doc[] = [];
  for (const file of readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    parseAllDocuments(readFileSync(join(k8sDir, file), 'utf8')).forEach((d, index) => {
      if (d.errors.length > 0) throw new Error(`${file} document ${index}: ${d.errors[0]!.message}`);
      const obj = d.toJS() as Obj | null;
      if (obj !== null) docs.push({ file, index, obj });
    });
  }
  return docs;
}

/** The document of `kind` (exactly one). */
function one(docs: Doc[], kind: string): Doc {
  const found = docs.filter((d) => d.obj.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind} under examples/deploy/k8s, found ${found.length}`);
  return found[0]!;
}

// ---------------------------------------------------------------------------------------------------------------
// Schema: the models' validate() (ajv, compiled from the OpenAPI schemas), and the declared types (excess fields).

const MODELS: Record<string, { validate(obj: Obj): void; type: string; from: string }> = {};
function model(apiVersion: string, kind: string, cls: new (o: any) => { validate(): void }, from: string): void {
  MODELS[`${apiVersion} ${kind}`] = { validate: (o) => new cls(o).validate(), type: `I${kind}`, from: `${from}/${kind}` };
}
model('apps/v1', 'StatefulSet', StatefulSet, 'kubernetes-models/apps/v1');
model('v1', 'Service', Service, 'kubernetes-models/v1');
model('v1', 'Secret', Secret, 'kubernetes-models/v1');
model('policy/v1', 'PodDisruptionBudget', PodDisruptionBudget, 'kubernetes-models/policy/v1');
model('keda.sh/v1alpha1', 'ScaledObject', ScaledObject, '@kubernetes-models/keda/keda.sh/v1alpha1');
model('keda.sh/v1alpha1', 'TriggerAuthentication', TriggerAuthentication, '@kubernetes-models/keda/keda.sh/v1alpha1');

const where = (d: Doc): string => `${d.file}#${d.index} (${d.obj.kind ?? 'no kind'})`;

/** What the models' schemas refuse, one line per document. */
function schemaProblems(docs: Doc[]): string[] {
  const problems: string[] = [];
  for (const d of docs) {
    const m = MODELS[`${d.obj.apiVersion} ${d.obj.kind}`];
    if (m === undefined) {
      problems.push(`${where(d)}: no schema for apiVersion ${d.obj.apiVersion}, kind ${d.obj.kind}`);
      continue;
    }
    try {
      m.validate(d.obj);
    } catch (err) {
      problems.push(`${where(d)}: ${(err as Error).message}`);
    }
  }
  return problems;
}

/**
 * Fields the packages' declared types do not have: each document becomes `const dN: IKind = <its JSON>` in a
 * TypeScript file held in memory, whose object literals TypeScript checks for excess properties at every depth.
 */
function unknownFieldProblems(docs: Doc[]): string[] {
  const known = docs.filter((d) => MODELS[`${d.obj.apiVersion} ${d.obj.kind}`] !== undefined);
  const imports = new Map<string, string>(); // from -> type
  const lines: string[] = [];
  known.forEach((d, i) => {
    const m = MODELS[`${d.obj.apiVersion} ${d.obj.kind}`]!;
    imports.set(m.from, m.type);
    lines.push(`// ${where(d)}\nexport const d${i}: ${m.type} = ${JSON.stringify(d.obj, null, 1)};`);
  });
  const text = [...[...imports].map(([from, type]) => `import type { ${type} } from '${from}';`), ...lines].join('\n');
  const file = join(root, 'test/integration/deploy-manifests.virtual.ts');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, lang, ...rest) => (name === file ? ts.createSourceFile(name, text, lang, true) : getSourceFile.call(host, name, lang, ...rest));
  host.fileExists = (name) => name === file || fileExists.call(host, name);
  host.readFile = (name) => (name === file ? text : readFile.call(host, name));
  const program = ts.createProgram([file], options, host);
  const sf = program.getSourceFile(file)!;
  return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)].map((diag) => {
    const message = ts.flattenDiagnosticMessageText(diag.messageText, ' ');
    const at = diag.start === undefined ? undefined : jsonPathAt(sf, diag.start);
    return at === undefined ? message : `${known[at.doc] === undefined ? '' : `${where(known[at.doc]!)}: `}${at.path}: ${message}`;
  });
}

/** The document index and the field path (spec.template.spec.x) at a position of the in-memory file. */
function jsonPathAt(sf: ts.SourceFile, pos: number): { doc: number; path: string } | undefined {
  let node: ts.Node = sf;
  for (;;) {
    const child = node.getChildren(sf).find((c) => c.getStart(sf) <= pos && pos < c.getEnd());
    if (child === undefined) break;
    node = child;
  }
  const path: string[] = [];
  for (let n: ts.Node | undefined = node; n !== undefined; n = n.parent) {
    const p: ts.Node | undefined = n.parent;
    if (p !== undefined && ts.isPropertyAssignment(p) && p.initializer === n) path.unshift(JSON.parse(p.name.getText(sf)) as string);
    else if (ts.isPropertyAssignment(n) && path.length === 0) path.unshift(JSON.parse(n.name.getText(sf)) as string);
    if (p !== undefined && ts.isArrayLiteralExpression(p)) path.unshift(`[${p.elements.indexOf(n as ts.Expression)}]`);
    if (ts.isVariableDeclaration(n)) return { doc: Number(n.name.getText(sf).slice(1)), path: path.join('.').replace(/\.\[/g, '[') };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// The Dockerfile, read as instructions (comments dropped, continuation lines joined), per stage.

interface Instruction {
  op: string;
  args: string;
}
function dockerfile(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  let line = '';
  for (const raw of text.split('\n')) {
    if (line === '' && /^\s*(#|$)/.test(raw)) continue;
    line += raw.replace(/\\\s*$/, ' ');
    if (/\\\s*$/.test(raw)) continue;
    const m = /^\s*(\S+)\s*(.*)$/.exec(line)!;
    line = '';
    const ins = { op: m[1]!.toUpperCase(), args: m[2]!.trim() };
    if (ins.op === 'FROM') stages.push([]);
    stages.at(-1)?.push(ins);
  }
  return stages;
}

/** The image's `node` user (node:*-slim), by name and number. */
const NODE_USER = { name: 'node', uid: 1000, gid: 1000 };

function dockerfileProblems(text: string, lock: Obj): string[] {
  const problems: string[] = [];
  const stages = dockerfile(text);
  const build = stages[0] ?? [];
  const final = stages.at(-1) ?? [];
  const args = (op: string, stage = final): string[] => stage.filter((i) => i.op === op).map((i) => i.args);
  if (stages.length < 2) problems.push('a multi-stage build (a build stage and a runtime stage)');
  if (!args('RUN', build).some((a) => /\bnpm ci\b(?!\s+--omit)/.test(a))) problems.push('the build stage runs `npm ci` (every dependency, for tsc)');
  if (!args('RUN', build).some((a) => /\bnpx tsc -p tsconfig\.json\b/.test(a))) problems.push('the build stage runs `npx tsc -p tsconfig.json`');

  // Non-root, by number (what runAsNonRoot can verify), or the node user by name.
  const user = args('USER').at(-1);
  const uid = user === undefined ? undefined : user.split(':')[0] === NODE_USER.name ? NODE_USER.uid : Number(user.split(':')[0]);
  if (uid === undefined || !Number.isInteger(uid) || uid === 0) problems.push(`a non-root USER in the runtime stage, got ${user ?? 'none'}`);

  // Production dependencies only, plus the optional peers the app needs, at the lockfile's versions.
  const runs = args('RUN');
  if (!runs.some((a) => /\bnpm ci --omit=dev\b/.test(a))) problems.push('the runtime stage runs `npm ci --omit=dev`');
  for (const peer of ['@redis/client', 'prom-client']) {
    const locked = lock.packages?.[`node_modules/${peer}`]?.version as string | undefined;
    const m = runs.map((a) => new RegExp(`\\s${peer.replace('/', '\\/')}@(\\S+)`).exec(a)).find((x) => x !== null);
    if (m === undefined) problems.push(`the runtime stage installs the optional peer ${peer}`);
    else if (m[1] !== locked) problems.push(`${peer}@${m[1]} in the Dockerfile, ${locked} in package-lock.json`);
  }

  // The journal: a directory made and owned by the user before VOLUME (a change after VOLUME is discarded).
  const env = Object.fromEntries(args('ENV').flatMap((a) => [...a.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])));
  const journal = env.JOURNAL_DIR as string | undefined;
  const volumeAt = final.findIndex((i) => i.op === 'VOLUME');
  const volumes = volumeAt < 0 ? [] : final[volumeAt]!.args.startsWith('[') ? (JSON.parse(final[volumeAt]!.args) as string[]) : final[volumeAt]!.args.split(/\s+/);
  if (journal === undefined) problems.push('ENV JOURNAL_DIR in the runtime stage');
  else {
    if (!volumes.some((v) => journal === v || journal.startsWith(`${v}/`))) problems.push(`a VOLUME holding JOURNAL_DIR ${journal}, got ${JSON.stringify(volumes)}`);
    const made = final.findIndex((i) => i.op === 'RUN' && i.args.includes(`mkdir -p ${journal}`));
    const owner = made < 0 ? undefined : /chown (?:-R )?(\S+?)(?::\S+)? (\S+)/.exec(final[made]!.args);
    const ownerUid = owner === undefined || owner === null ? undefined : owner[1] === NODE_USER.name ? NODE_USER.uid : Number(owner[1]);
    if (made < 0) problems.push(`a RUN mkdir -p ${journal}`);
    else if (ownerUid !== uid || !(journal === owner![2] || journal.startsWith(`${owner![2]}/`))) problems.push(`the journal's directory chowned to the USER (${user}), got ${final[made]!.args}`);
    if (made >= 0 && volumeAt >= 0 && made > volumeAt) problems.push('the journal directory is made before VOLUME');
  }

  // node as PID 1, the app directly: exec form, no shell, no npm.
  const cmd = args('CMD').at(-1);
  let argv: unknown;
  try {
    argv = cmd === undefined ? undefined : JSON.parse(cmd);
  } catch {
    argv = cmd;
  }
  if (!Array.isArray(argv) || argv[0] !== 'node' || argv[1] !== appJs) problems.push(`CMD ["node", "${appJs}"] in exec form, got ${cmd ?? 'none'}`);
  if (args('ENTRYPOINT').length > 0) problems.push('no ENTRYPOINT (node itself is PID 1)');
  if (args('STOPSIGNAL').at(-1) !== 'SIGTERM') problems.push('STOPSIGNAL SIGTERM');
  if (env.PORT === undefined || !args('EXPOSE').includes(env.PORT)) problems.push(`EXPOSE of ENV PORT (${env.PORT})`);
  // What the runtime stage copies from the build exists after `tsc -p tsconfig.json`, and holds the CMD's script.
  const copied = args('COPY').flatMap((a) => /^--from=build \/app\/(\S+) (\S+)$/.exec(a)?.slice(1, 2) ?? []);
  for (const c of copied) if (!existsSync(join(root, c))) problems.push(`COPY --from=build /app/${c}: not in this checkout's build`);
  if (!copied.some((c) => appJs.startsWith(`${c}/`))) problems.push(`the runtime stage copies ${appJs}`);
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// The files against each other.

/** The app's configuration as the StatefulSet's container would read it (`--print-config`, its env). */
function appConfig(sts: Obj): Obj {
  const run = spawnSync(process.execPath, [appJs, '--print-config'], { cwd: root, env: containerEnv(sts), encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${appJs} --print-config with the StatefulSet's env: ${run.stderr}`);
  return JSON.parse(run.stdout) as Obj;
}

/** The container's environment: plain values as they are, values from the Secret as placeholders. */
function containerEnv(sts: Obj): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOSTNAME: `${sts.metadata.name}-0` };
  for (const e of container(sts).env ?? []) env[e.name] = e.value ?? (e.name === 'REDIS_URL' ? 'redis://placeholder:6379' : 'placeholder');
  return env;
}

const container = (sts: Obj): Obj => sts.spec.template.spec.containers[0];

function consistencyProblems(docs: Doc[], dockerText: string, readme: string): string[] {
  const problems: string[] = [];
  const sts = one(docs, 'StatefulSet').obj;
  const c = container(sts);
  const pod = sts.spec.template.spec;
  const config = appConfig(sts);
  const portOf = (p: number | string): number | undefined => (typeof p === 'number' ? p : c.ports?.find((x: Obj) => x.name === p)?.containerPort);

  // Probes on the served port.
  for (const [probe, path] of [
    ['livenessProbe', '/livez'],
    ['readinessProbe', '/readyz'],
  ] as const) {
    const get = c[probe]?.httpGet;
    if (get?.path !== path) problems.push(`${probe}.httpGet.path is ${path}, got ${get?.path}`);
    if (portOf(get?.port) !== config.port) problems.push(`${probe} on the app's port ${config.port}, got ${get?.port}`);
  }
  const annotations = sts.spec.template.metadata?.annotations ?? {};
  if (Number(annotations['prometheus.io/port']) !== config.port) problems.push(`prometheus.io/port ${annotations['prometheus.io/port']}, the app serves ${config.port}`);
  const svc = one(docs, 'Service').obj;
  if (!svc.spec.ports.some((p: Obj) => portOf(p.targetPort) === config.port)) problems.push(`the Service targets the app's port ${config.port}`);
  if (sts.spec.serviceName !== svc.metadata.name) problems.push(`serviceName ${sts.spec.serviceName}, the Service is ${svc.metadata.name}`);

  // The grace period covers close()'s drain, with a margin.
  const grace = pod.terminationGracePeriodSeconds as number | undefined;
  if (grace === undefined || grace * 1000 < config.closeTimeoutMs + 2000) problems.push(`terminationGracePeriodSeconds (${grace}) at least 2 s over the app's close timeout (${config.closeTimeoutMs} ms)`);

  // The journal on the pod's own claim; the replica count left to KEDA.
  const mount = (c.volumeMounts ?? []).find((m: Obj) => config.journalDir === m.mountPath || String(config.journalDir).startsWith(`${m.mountPath}/`));
  const claims = (sts.spec.volumeClaimTemplates ?? []).map((t: Obj) => t.metadata.name);
  if (mount === undefined || !claims.includes(mount.name)) problems.push(`the journal (${config.journalDir}) on a volumeClaimTemplate, got mount ${mount?.name}, claims ${claims}`);
  if (sts.spec.replicas !== undefined) problems.push('no spec.replicas on the StatefulSet: KEDA sets it');

  // The pod's user is the image's.
  const user = dockerfile(dockerText).at(-1)!.filter((i) => i.op === 'USER').at(-1)?.args ?? '';
  const [u, g] = user.split(':').map((x) => (x === NODE_USER.name ? NODE_USER.uid : Number(x)));
  const sc = pod.securityContext ?? {};
  if (sc.runAsNonRoot !== true) problems.push('securityContext.runAsNonRoot: true');
  if (sc.runAsUser !== u) problems.push(`securityContext.runAsUser ${sc.runAsUser}, the image's USER ${user}`);
  if (sc.fsGroup !== (g ?? u)) problems.push(`securityContext.fsGroup ${sc.fsGroup}: the journal's volume writable by the image's group ${g ?? u}`);

  // KEDA: the StatefulSet, the app's stream and group, the container's env, the TriggerAuthentication, the Secret.
  const so = one(docs, 'ScaledObject').obj;
  const ref = so.spec.scaleTargetRef;
  if (ref.kind !== 'StatefulSet' || ref.name !== sts.metadata.name) problems.push(`scaleTargetRef ${ref.kind}/${ref.name}, the consumers are StatefulSet/${sts.metadata.name}`);
  const trigger = so.spec.triggers.find((t: Obj) => t.type === 'redis-streams');
  if (trigger === undefined) problems.push('a redis-streams trigger');
  else {
    const md = trigger.metadata;
    if (md.stream !== config.stream) problems.push(`the trigger's stream ${md.stream}, the app reads ${config.stream}`);
    if (md.consumerGroup !== config.group) problems.push(`the trigger's consumerGroup ${md.consumerGroup}, the app's group is ${config.group}`);
    for (const k of ['lagCount', 'activationLagCount']) if (!/^\d+$/.test(md[k] ?? '')) problems.push(`the trigger's ${k} a whole number, got ${md[k]}`);
    if (!(c.env ?? []).some((e: Obj) => e.name === md.addressFromEnv)) problems.push(`addressFromEnv ${md.addressFromEnv}: not an env var of the container`);
    const auth = docs.find((d) => d.obj.kind === 'TriggerAuthentication' && d.obj.metadata.name === trigger.authenticationRef?.name);
    if (auth === undefined) problems.push(`the TriggerAuthentication ${trigger.authenticationRef?.name}`);
    const secret = one(docs, 'Secret').obj;
    const keys = Object.keys({ ...secret.data, ...secret.stringData });
    const refs = [...(auth?.obj.spec.secretTargetRef ?? []), ...(c.env ?? []).flatMap((e: Obj) => (e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef] : []))];
    for (const r of refs) if (r.name !== secret.metadata.name || !keys.includes(r.key)) problems.push(`secret ${r.name}/${r.key}: not in the Secret ${secret.metadata.name} (${keys})`);
  }
  if (!(so.spec.minReplicaCount >= 1)) problems.push(`minReplicaCount at least 1, got ${so.spec.minReplicaCount}`);

  // The README explains these numbers: they must be the ones in the files.
  const shown = (n: number): boolean => readme.includes(String(n)) || readme.includes(n.toLocaleString('en-US'));
  const numbers = { lagCount: Number(trigger?.metadata.lagCount), maxReplicaCount: so.spec.maxReplicaCount, terminationGracePeriodSeconds: grace, closeTimeoutMs: config.closeTimeoutMs };
  for (const [name, n] of Object.entries(numbers)) if (typeof n !== 'number' || !shown(n)) problems.push(`examples/deploy/README.md explains ${name} ${n}`);
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------

const docs = loadDocs();
const dockerText = readFileSync(join(deployDir, 'Dockerfile'), 'utf8');
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Obj;
const readme = readFileSync(join(deployDir, 'README.md'), 'utf8');
const copy = <T>(x: T): T => structuredClone(x);
const mutated = (kind: string, change: (o: Obj) => void): Doc[] =>
  docs.map((d) => {
    if (d.obj.kind !== kind) return d;
    const obj = copy(d.obj);
    change(obj);
    return { ...d, obj };
  });

describe('examples/deploy/k8s: schemas', () => {
  it('every document has a schema and passes it', () => {
    expect(docs.map((d) => `${d.obj.apiVersion} ${d.obj.kind}`).sort()).toEqual(
      ['apps/v1 StatefulSet', 'keda.sh/v1alpha1 ScaledObject', 'keda.sh/v1alpha1 TriggerAuthentication', 'policy/v1 PodDisruptionBudget', 'v1 Secret', 'v1 Service'].sort(),
    );
    expect(schemaProblems(docs)).toEqual([]);
  });

  it('no field the declared types do not have, at any depth', () => {
    expect(unknownFieldProblems(docs)).toEqual([]);
  }, 60_000);

  it('fails on a wrong type, a missing required field, a string KEDA wants as a number... and a misspelled field', () => {
    // Wrong type: the grace period as a string.
    expect(schemaProblems(mutated('StatefulSet', (o) => (o.spec.template.spec.terminationGracePeriodSeconds = '30'))).join('\n')).toMatch(/terminationGracePeriodSeconds must be integer/);
    // Required: a StatefulSet without its selector.
    expect(schemaProblems(mutated('StatefulSet', (o) => delete o.spec.selector)).join('\n')).toMatch(/must have required property selector/);
    // KEDA's trigger metadata is strings only: lagCount as a YAML number.
    expect(schemaProblems(mutated('ScaledObject', (o) => (o.spec.triggers[0].metadata.lagCount = 5000))).join('\n')).toMatch(/lagCount must be string/);
    // A misspelled field passes the schemas (they allow unknown fields)...
    const misspelled = mutated('StatefulSet', (o) => {
      o.spec.template.spec.terminationGracePeriodSecond = o.spec.template.spec.terminationGracePeriodSeconds;
      delete o.spec.template.spec.terminationGracePeriodSeconds;
    });
    expect(schemaProblems(misspelled)).toEqual([]);
    // ...and not the declared types, which name where it is.
    expect(unknownFieldProblems(misspelled)).toEqual([expect.stringMatching(/statefulset\.yaml#0 \(StatefulSet\): spec\.template\.spec\.terminationGracePeriodSecond: .*'"terminationGracePeriodSecond"' does not exist in type 'IPodSpec'/)]);
    // Deeper, and in KEDA's types: a container's misspelled probe, a ScaledObject's `minReplicas`.
    expect(unknownFieldProblems(mutated('StatefulSet', (o) => (o.spec.template.spec.containers[0].readynessProbe = {}))).join('\n')).toMatch(/containers\[0\]\.readynessProbe/);
    expect(unknownFieldProblems(mutated('ScaledObject', (o) => (o.spec.minReplicas = 1))).join('\n')).toMatch(/spec\.minReplicas: .*IScaledObjectSpec/);
  }, 60_000);
});

describe('examples/deploy: the files agree', () => {
  it('probes, port, grace period, journal volume, user, KEDA trigger, Secret and README numbers', () => {
    expect(consistencyProblems(docs, dockerText, readme)).toEqual([]);
  });

  it('the Dockerfile: multi-stage, non-root, npm ci --omit=dev with the peers at the locked versions, the journal owned by the user, node as PID 1', () => {
    expect(dockerfileProblems(dockerText, lock)).toEqual([]);
  });

  it('fails when they do not', () => {
    const bad = (kind: string, change: (o: Obj) => void): string => consistencyProblems(mutated(kind, change), dockerText, readme).join('\n');
    expect(bad('StatefulSet', (o) => (o.spec.template.spec.terminationGracePeriodSeconds = 20))).toMatch(/terminationGracePeriodSeconds \(20\) at least 2 s over the app's close timeout \(25000 ms\)/);
    expect(bad('StatefulSet', (o) => (container(o).readinessProbe.httpGet.path = '/healthz'))).toMatch(/readinessProbe\.httpGet\.path is \/readyz/);
    expect(bad('StatefulSet', (o) => (container(o).ports[0].containerPort = 8080))).toMatch(/livenessProbe on the app's port 9464/);
    expect(bad('StatefulSet', (o) => (container(o).env.find((e: Obj) => e.name === 'CLOSE_TIMEOUT_MS').value = '29000'))).toMatch(/close timeout \(29000 ms\)/);
    expect(bad('StatefulSet', (o) => (container(o).env.find((e: Obj) => e.name === 'REDIS_STREAM').value = 'payments'))).toMatch(/the trigger's stream orders, the app reads payments/);
    expect(bad('StatefulSet', (o) => (container(o).volumeMounts[0].mountPath = '/var/lib/journal'))).toMatch(/the journal \(\/data\/journal\) on a volumeClaimTemplate/);
    expect(bad('StatefulSet', (o) => (o.spec.template.spec.securityContext.runAsUser = 0))).toMatch(/runAsUser 0, the image's USER/);
    expect(bad('ScaledObject', (o) => (o.spec.triggers[0].metadata.consumerGroup = 'workers'))).toMatch(/consumerGroup workers, the app's group is ringpool/);
    expect(bad('ScaledObject', (o) => (o.spec.scaleTargetRef.kind = 'Deployment'))).toMatch(/scaleTargetRef Deployment/);
    expect(bad('ScaledObject', (o) => (o.spec.triggers[0].metadata.lagCount = '7000'))).toMatch(/README\.md explains lagCount 7000/);
    // A value the app refuses fails its strict parsing, named.
    expect(() => bad('StatefulSet', (o) => (container(o).env.find((e: Obj) => e.name === 'THREADS').value = 'two'))).toThrow(/THREADS must be an integer from 1 to 32, got `two`/);

    const badDocker = (from: RegExp, to: string): string => {
      expect(dockerText).toMatch(from);
      return dockerfileProblems(dockerText.replace(from, to), lock).join('\n');
    };
    expect(badDocker(/^USER .*$/m, 'USER root')).toMatch(/a non-root USER in the runtime stage, got root/);
    expect(badDocker(/npm ci --omit=dev/, 'npm ci')).toMatch(/runs `npm ci --omit=dev`/);
    expect(badDocker(/prom-client@[\d.]+/, 'prom-client@15.0.0')).toMatch(/prom-client@15\.0\.0 in the Dockerfile, [\d.]+ in package-lock\.json/);
    expect(badDocker(/chown -R node:node/, 'chown -R root:root')).toMatch(/the journal's directory chowned to the USER/);
    expect(badDocker(/^CMD .*$/m, 'CMD ["npm", "start"]')).toMatch(/CMD \["node", "dist\/examples\/deploy\/app\.js"\] in exec form/);
    expect(badDocker(/^CMD .*$/m, 'CMD node dist/examples/deploy/app.js')).toMatch(/in exec form, got node dist/);
    expect(badDocker(/^VOLUME .*$/m, 'VOLUME ["/var/lib"]')).toMatch(/a VOLUME holding JOURNAL_DIR \/data\/journal/);
  }, 30_000);
});

// ---------------------------------------------------------------------------------------------------------------
// The app, run as the container runs it.

describe('examples/deploy/app.js on the suite\'s Redis', () => {
  const redis = scratch('ringpool-test-deploy');
  const journal = mkdtempSync(join(tmpdir(), 'ringpool-deploy-journal-'));
  afterAll(() => rmSync(journal, { recursive: true, force: true }));
  const sts = one(docs, 'StatefulSet').obj;
  const grace = sts.spec.template.spec.terminationGracePeriodSeconds as number;

  interface App {
    child: ChildProcess;
    url: string;
    lines: Obj[];
    exit: Promise<{ code: number | null; ms: number; signalAt: number }>;
    signalAt: number;
  }
  /** The app with the StatefulSet's env, on the suite's Redis, a stream of its own, a journal in a temp dir. */
  async function start(stream: string, extra: NodeJS.ProcessEnv = {}): Promise<App> {
    const env = { ...containerEnv(sts), REDIS_URL: url, REDIS_STREAM: stream, JOURNAL_DIR: journal, PORT: '0', HOST: '127.0.0.1', ...extra };
    const child = spawn(process.execPath, [appJs], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const app = { child, url: '', lines: [] as Obj[], signalAt: 0 } as App;
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let pending = '';
    const listening = new Promise<void>((resolve, reject) => {
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        pending += chunk;
        const parts = pending.split('\n');
        pending = parts.pop()!;
        for (const p of parts) {
          const line = JSON.parse(p) as Obj;
          app.lines.push(line);
          if (line.event === 'listening') {
            app.url = line.url as string;
            resolve();
          }
        }
      });
      child.once('exit', (code) => reject(new Error(`the app exited (${code}) before listening: ${stderr}`)));
    });
    app.exit = new Promise((resolve) => child.once('exit', (code) => resolve({ code, ms: Date.now() - app.signalAt, signalAt: app.signalAt })));
    await listening;
    return app;
  }
  const get = async (app: App, path: string): Promise<{ status: number; body: string }> => {
    const res = await fetch(`${app.url}${path}`);
    return { status: res.status, body: await res.text() };
  };
  const metric = async (app: App, series: string): Promise<number> => {
    const m = new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec((await get(app, '/metrics')).body);
    return m === null ? NaN : Number(m[1]);
  };
  async function until(what: string, ok: () => Promise<boolean>, ms = 20_000): Promise<void> {
    const end = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const group = async (stream: string): Promise<{ lag: number; pending: number; consumers: number }> => {
    await redis.connected();
    const g = ((await redis.admin.sendCommand(['XINFO', 'GROUPS', stream])) as Array<Record<string, unknown>>)[0]!;
    return { lag: Number(g.lag), pending: Number(g.pending), consumers: Number(g.consumers) };
  };
  /** Entries pending under one consumer of the group (XPENDING's summary). */
  const pendingOf = async (stream: string, consumer: string): Promise<number> => {
    await redis.connected();
    const summary = (await redis.admin.sendCommand(['XPENDING', stream, 'ringpool'])) as unknown[];
    return Number((summary[3] as Array<[string, string]> | null)?.find(([c]) => c === consumer)?.[1] ?? 0);
  };
  const produce = async (stream: string, n: number, extra: unknown[] = []): Promise<void> => {
    const p = redisProducer({ url, stream });
    for (let i = 0; i < n; i++) p.send({ id: `order-${i}`, sku: `sku-${i % 7}`, qty: 1 + (i % 3) });
    for (const x of extra) p.send(x);
    await p.close();
  };
  const sigterm = (app: App): void => {
    app.signalAt = Date.now();
    app.child.kill('SIGTERM');
  };

  it('live at once, ready once started, processes orders into the durable receipts, drains on SIGTERM and exits 0 within the grace period', async () => {
    const { stream } = redis.names();
    const app = await start(stream);
    expect((await get(app, '/livez')).status).toBe(200);
    const ready = await get(app, '/readyz');
    // Until metrics/serve.ts answers /readyz (issue #33's probes), this is a 404: the test fails here, by design.
    expect(ready.status, `/readyz answered ${ready.status}: ${ready.body}`).not.toBe(404);
    await until('/readyz 200', async () => (await get(app, '/readyz')).status === 200);
    expect(app.lines.find((l) => l.event === 'started')).toMatchObject({ stream, group: 'ringpool', consumer: `${sts.metadata.name}-0` });

    await produce(stream, 200, [{ not: 'an order' }]);
    await until('200 receipts', async () => (await metric(app, 'ringpool_messages_processed_total{mailbox="receipts"}')) === 200);
    expect(await metric(app, 'ringpool_messages_processed_total{mailbox="orders"}')).toBe(200);
    expect(await metric(app, 'ringpool_messages_dead_lettered_total{mailbox="orders",reason="unrecoverable"}')).toBe(1);
    expect(app.lines.find((l) => l.event === 'dead-letter')).toMatchObject({ mailbox: 'orders', reason: 'unrecoverable' });
    expect((await get(app, '/readyz')).status).toBe(200);
    expect((await get(app, '/livez')).status).toBe(200);

    // A backlog, then SIGTERM while busy: not ready while draining (alive all the same), exit 0 within the grace
    // period, nothing left; what the pod had not read stays in the stream for the others.
    await produce(stream, 3000);
    await until('the pod busy', async () => (await metric(app, 'ringpool_messages_processed_total{mailbox="orders"}')) > 300);
    sigterm(app);
    await until('the closing line', async () => app.lines.some((l) => l.event === 'closing'), 5_000);
    // The drain of what the pod holds (up to 512 read entries) takes a few hundred ms: the server still answers.
    const [readyz, livez] = await Promise.all([get(app, '/readyz').catch(() => null), get(app, '/livez').catch(() => null)]);
    expect(readyz?.status, 'ready while draining').toBe(503);
    expect(livez?.status, 'alive while draining').toBe(200);
    const exit = await app.exit;
    expect(exit.code).toBe(0);
    expect(exit.ms).toBeLessThan(grace * 1000);
    expect(app.lines.find((l) => l.event === 'closing')).toMatchObject({ signal: 'SIGTERM', timeoutMs: appConfig(sts).closeTimeoutMs });
    const left = app.lines.filter((l) => l.event === 'left');
    expect(left.map((l) => l.mailbox).sort()).toEqual(['orders', 'receipts']);
    // Nothing accepted is left; a read that was on its way when close() began may leave a few entries pending
    // under the pod's name, unrun: `left.ready` of orders counts them, and says where they stay (the next start
    // under that name, or another consumer after claimIdleMs, runs them).
    const orders = left.find((l) => l.mailbox === 'orders')!;
    expect(orders).toMatchObject({ inFlight: 0, delayed: 0 });
    expect(orders.ready).toBe(await pendingOf(stream, `${sts.metadata.name}-0`));
    if ((orders.ready as number) > 0) expect(String(orders.stays)).toMatch(/pending in the Redis stream/);
    expect(left.find((l) => l.mailbox === 'receipts')).toMatchObject({ ready: 0, inFlight: 0, delayed: 0 });
    expect(app.lines.at(-1)).toMatchObject({ event: 'closed', drained: true });
    expect((await group(stream)).lag).toBeGreaterThan(0);

    // The next pod (here: the same one again) reads the rest, those entries included.
    const next = await start(stream);
    await until('the rest read', async () => (await group(stream)).lag === 0 && (await get(next, '/readyz')).status === 200, 30_000);
    await until('nothing held', async () => (await group(stream)).pending === 0, 30_000);
    sigterm(next);
    expect((await next.exit).code).toBe(0);
  }, 90_000);

  it('Redis unreachable at start: live, not ready, and SIGTERM meanwhile exits 0', async () => {
    const { stream } = redis.names();
    const app = await start(stream, { REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    await new Promise((r) => setTimeout(r, 500));
    expect((await get(app, '/livez')).status).toBe(200);
    expect((await get(app, '/readyz')).status).toBe(503);
    sigterm(app);
    expect((await app.exit).code).toBe(0);
    expect(app.lines.some((l) => l.event === 'started' || l.event === 'start-failed')).toBe(false);
    expect(app.lines.at(-1)).toMatchObject({ event: 'closed', drained: true });
  });

  it('a drain cut short exits 1 and says what was left and where it stays; the next start runs it', async () => {
    const { stream } = redis.names();
    const app = await start(stream, { CLOSE_TIMEOUT_MS: '1' });
    await until('/readyz 200', async () => (await get(app, '/readyz')).status === 200);
    await produce(stream, 2000);
    await until('the pod busy', async () => (await metric(app, 'ringpool_messages_processed_total{mailbox="orders"}')) > 100);
    sigterm(app);
    expect((await app.exit).code).toBe(1);
    expect(app.lines.at(-1)).toMatchObject({ event: 'closed', drained: false });
    const orders = app.lines.find((l) => l.event === 'left' && l.mailbox === 'orders')!;
    expect(orders.ready + orders.inFlight).toBeGreaterThan(0);
    expect(orders.stays).toMatch(/pending in the Redis stream/);
    // The stopped pod's entries are pending under its name; restarted under the same name (a StatefulSet pod),
    // it reads them back first, and its journal's receipts run too.
    expect((await group(stream)).pending).toBeGreaterThan(0);
    const next = await start(stream);
    await until('everything done', async () => {
      const g = await group(stream);
      return g.lag === 0 && g.pending === 0;
    }, 30_000);
    sigterm(next);
    expect((await next.exit).code).toBe(0);
    expect(next.lines.at(-1)).toMatchObject({ event: 'closed', drained: true });
  }, 90_000);
});
