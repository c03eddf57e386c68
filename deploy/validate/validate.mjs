// Offline validation of rendered ctxagent manifests (run by scripts/validate-deploy.sh).
//
//   node validate.mjs --rules RULES.yml RENDERED.yaml...
//       Validates every object of each multi-document YAML file against the Kubernetes OpenAPI
//       schemas (kubernetes-models) and the Prometheus Operator CRD schemas
//       (@kubernetes-models/prometheus-operator): types, required fields, enums and formats. Those
//       schemas allow unknown properties, so a misspelt optional field is not caught. Also checks
//       that each PrometheusRule's spec equals the plain rules file, and cross-checks the DaemonSet
//       with its probes and its PodMonitor. Prints one line per file and a last line "objects N";
//       exits 1 on any problem.
//   node validate.mjs --rules RULES.yml --write-prometheusrule OUT.yaml
//       Writes the PrometheusRule manifest whose spec is the rules file (deploy/base/prometheusrule.yaml).
import { readFileSync, writeFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import yaml from "js-yaml";

// apiVersion -> module exporting one class per kind, each with validate().
const MODULES = {
  "v1": "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "rbac.authorization.k8s.io/v1": "kubernetes-models/rbac.authorization.k8s.io/v1",
  "policy/v1": "kubernetes-models/policy/v1",
  "networking.k8s.io/v1": "kubernetes-models/networking.k8s.io/v1",
  "scheduling.k8s.io/v1": "kubernetes-models/scheduling.k8s.io/v1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

function parseArgs(argv) {
  const a = { files: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--rules") a.rules = argv[++i];
    else if (argv[i] === "--write-prometheusrule") a.write = argv[++i];
    else a.files.push(argv[i]);
  }
  if (!a.rules) throw new Error("--rules RULES.yml is required");
  return a;
}

// The PrometheusRule manifest: metadata, then the rules file's text (after its leading comments)
// indented under spec, so that block scalars and comments stay exactly as written there.
function prometheusRuleText(rulesPath, rulesText) {
  const lines = rulesText.split("\n");
  let i = 0;
  while (i < lines.length && (lines[i].startsWith("#") || lines[i].trim() === "")) i++;
  const body = lines.slice(i).map((l) => (l === "" ? "" : "  " + l)).join("\n");
  return [
    `# Generated from deploy/prometheus/ctxagent-rules.yml: edit that file, then run`,
    `#   scripts/validate-deploy.sh --write-prometheusrule`,
    `# (scripts/validate-deploy.sh fails when this spec and that file differ).`,
    `apiVersion: monitoring.coreos.com/v1`,
    `kind: PrometheusRule`,
    `metadata:`,
    `  name: ctxagent`,
    `  labels:`,
    `    app.kubernetes.io/name: ctxagent`,
    `    app.kubernetes.io/part-of: ctxagent`,
    `spec:`,
    body.replace(/\n*$/, "\n"),
  ].join("\n");
}

function describe(obj) {
  const ns = obj?.metadata?.namespace ? `${obj.metadata.namespace}/` : "";
  return `${obj?.kind ?? "?"} ${ns}${obj?.metadata?.name ?? "?"}`;
}

function formatError(e) {
  if (Array.isArray(e?.errors)) {
    return e.errors
      .map((x) => `${x.instancePath || x.dataPath || "/"} ${x.message}${x.params?.additionalProperty ? ` (${x.params.additionalProperty})` : ""}`)
      .join("; ");
  }
  return e?.message ?? String(e);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const rulesText = readFileSync(args.rules, "utf8");
  const rules = yaml.load(rulesText);
  if (args.write) {
    writeFileSync(args.write, prometheusRuleText(args.rules, rulesText));
    console.log(`wrote ${args.write}`);
    return 0;
  }
  const problems = [];
  let total = 0;
  for (const file of args.files) {
    const docs = yaml.loadAll(readFileSync(file, "utf8")).filter((d) => d !== null && d !== undefined);
    if (docs.length === 0) problems.push(`${file}: no objects rendered`);
    const byKind = {};
    for (const obj of docs) {
      const what = `${file}: ${describe(obj)}`;
      if (typeof obj !== "object" || !obj.apiVersion || !obj.kind) {
        problems.push(`${what}: not a Kubernetes object (apiVersion and kind are required)`);
        continue;
      }
      const mod = MODULES[obj.apiVersion];
      if (!mod) {
        problems.push(`${what}: apiVersion ${obj.apiVersion} has no schema here (known: ${Object.keys(MODULES).join(", ")})`);
        continue;
      }
      const Kind = (await import(mod))[obj.kind];
      if (typeof Kind !== "function") {
        problems.push(`${what}: kind ${obj.kind} is not part of ${obj.apiVersion}`);
        continue;
      }
      try {
        new Kind(obj).validate();
      } catch (e) {
        problems.push(`${what}: ${formatError(e)}`);
        continue;
      }
      if (!obj.metadata?.name) problems.push(`${what}: metadata.name is required`);
      (byKind[obj.kind] ??= []).push(obj);
      total++;
    }
    problems.push(...crossChecks(file, byKind, rules));
    console.log(`${file}: ${docs.length} objects`);
  }
  for (const p of problems) console.error(`INVALID ${p}`);
  console.log(`objects ${total}`);
  return problems.length === 0 ? 0 : 1;
}

// Checks the schemas cannot express.
function crossChecks(file, byKind, rules) {
  const out = [];
  for (const pr of byKind.PrometheusRule ?? []) {
    if (!isDeepStrictEqual(pr.spec, rules)) {
      out.push(`${file}: ${describe(pr)}: spec differs from deploy/prometheus/ctxagent-rules.yml ` +
        `(run scripts/validate-deploy.sh --write-prometheusrule)`);
    }
  }
  for (const ds of byKind.DaemonSet ?? []) {
    const tmpl = ds.spec?.template ?? {};
    const labels = tmpl.metadata?.labels ?? {};
    for (const [k, v] of Object.entries(ds.spec?.selector?.matchLabels ?? {})) {
      if (labels[k] !== v) out.push(`${file}: ${describe(ds)}: selector ${k}=${v} does not match the pod template`);
    }
    const podSpec = tmpl.spec ?? {};
    const volumes = new Set((podSpec.volumes ?? []).map((v) => v.name));
    for (const c of podSpec.containers ?? []) {
      const ports = new Set((c.ports ?? []).map((p) => p.name));
      for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
        const port = c[probe]?.httpGet?.port;
        if (typeof port === "string" && !ports.has(port)) {
          out.push(`${file}: ${describe(ds)}: ${c.name}.${probe} uses port "${port}", not a port of the container`);
        }
      }
      for (const m of c.volumeMounts ?? []) {
        if (!volumes.has(m.name)) out.push(`${file}: ${describe(ds)}: ${c.name} mounts undeclared volume ${m.name}`);
      }
      const sc = c.securityContext ?? {};
      const add = sc.capabilities?.add ?? [];
      if (sc.allowPrivilegeEscalation === false && (sc.privileged || add.some((x) => /^(CAP_)?SYS_ADMIN$/.test(x)))) {
        out.push(`${file}: ${describe(ds)}: allowPrivilegeEscalation=false conflicts with privileged/SYS_ADMIN (the API server rejects it)`);
      }
    }
    // The port the probes use must be the one the NetworkPolicy guards, on these pods.
    const probePorts = new Set((podSpec.containers ?? []).flatMap((c) =>
      ["startupProbe", "livenessProbe", "readinessProbe"].map((p) => c[p]?.httpGet?.port).filter(Boolean)));
    for (const np of byKind.NetworkPolicy ?? []) {
      for (const [k, v] of Object.entries(np.spec?.podSelector?.matchLabels ?? {})) {
        if (labels[k] !== v) out.push(`${file}: ${describe(np)}: podSelector ${k}=${v} does not select ${describe(ds)}'s pods`);
      }
      const guarded = new Set((np.spec?.ingress ?? []).flatMap((r) => (r.ports ?? []).map((p) => p.port)));
      for (const port of probePorts) {
        if (!guarded.has(port)) out.push(`${file}: ${describe(np)}: probe port "${port}" is not the guarded port`);
      }
    }
    for (const pm of byKind.PodMonitor ?? []) {
      for (const [k, v] of Object.entries(pm.spec?.selector?.matchLabels ?? {})) {
        if (labels[k] !== v) out.push(`${file}: ${describe(pm)}: selector ${k}=${v} does not select ${describe(ds)}'s pods`);
      }
      const names = new Set((podSpec.containers ?? []).flatMap((c) => (c.ports ?? []).map((p) => p.name)));
      for (const ep of pm.spec?.podMetricsEndpoints ?? []) {
        if (ep.port && !names.has(ep.port)) out.push(`${file}: ${describe(pm)}: port "${ep.port}" is not a port of ${describe(ds)}`);
      }
    }
  }
  return out;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`validate.mjs: ${e?.stack ?? e}`);
    process.exit(2);
  },
);
