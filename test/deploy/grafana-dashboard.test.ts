import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { metricFamilies, sampleSum, scrapeMetrics } from '../support/admin-metrics.ts';
import type { Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, useMoatWithTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * The operators' Grafana dashboard (deploy/grafana/dashboards/moat.json) against the server it
 * watches: every PromQL expression parses with Prometheus's own grammar (@prometheus-io/lezer-promql),
 * and every metric it names is one a real Moat exports on its admin listener after a PAR → code →
 * token flow. Then the `monitoring` profile of docker-compose.yml: Prometheus scrapes the admin port
 * with the token Moat reads, Grafana is given the dashboard and a Prometheus data source.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const read = (...path: string[]) => readFileSync(join(ROOT, ...path), 'utf8');

interface Target {
  refId: string;
  expr: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  type: string;
  name: string;
  query: string | { query: string };
  datasource?: { uid?: string };
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboard = JSON.parse(read('deploy', 'grafana', 'dashboards', 'moat.json')) as Dashboard;
/** Every panel, those inside collapsed rows too. */
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = panels.filter((p) => p.type !== 'row');
const DATASOURCE = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };

/** Grafana's built-in interval variables, given a value so the expression is PromQL Prometheus would receive. */
const BUILT_IN_INTERVALS = /\$(?:__rate_interval|__interval|__range)\b|\$\{(?:__rate_interval|__interval|__range)\}/g;

interface Selector {
  metric: string;
  matchers: { label: string; op: string; value: string }[];
}

/** The vector selectors of one expression, from Prometheus's own grammar; throws on a syntax error. */
function selectorsOf(expr: string): Selector[] {
  const promql = expr.replace(BUILT_IN_INTERVALS, '5m');
  const text = (node: { from: number; to: number }) => promql.slice(node.from, node.to);
  const selectors: Selector[] = [];
  const errors: number[] = [];
  parser.parse(promql).iterate({
    enter(ref) {
      if (ref.type.isError) errors.push(ref.from);
      if (ref.name !== 'VectorSelector') return;
      const name = ref.node.getChild('Identifier');
      const matchers = ref.node.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? [];
      selectors.push({
        metric: name === null ? '' : text(name),
        matchers: matchers.map((m) => ({
          label: text(m.getChild('LabelName')!),
          op: text(m.getChild('MatchOp')!),
          value: JSON.parse(text(m.getChild('StringLiteral')!)) as string,
        })),
      });
    },
  });
  if (errors.length > 0) throw new Error(`PromQL syntax error at offset ${errors[0]} in: ${promql}`);
  return selectors;
}

/**
 * The metric family a series name belongs to: itself, or for `_bucket`, `_sum` and `_count` the
 * histogram (or summary) it comes from. A histogram's bare name has no series of its own.
 */
function familyOf(series: string, families: Map<string, string>): string | undefined {
  const type = families.get(series);
  if (type !== undefined) return type === 'histogram' ? undefined : series;
  const [, base = '', suffix] = /^(.+)_(bucket|sum|count)$/.exec(series) ?? [];
  const baseType = families.get(base);
  if (baseType === 'histogram' || (baseType === 'summary' && suffix !== 'bucket')) return base;
  return undefined;
}

const targetsOf = (p: Panel) => p.targets ?? [];
const everyExpr = queryPanels.flatMap((p) => targetsOf(p).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })));

describe('the Grafana dashboard (deploy/grafana/dashboards/moat.json)', () => {
  it('is a schema-39 dashboard whose every panel has a unique id, a title and the Prometheus data source variable', () => {
    expect(dashboard.schemaVersion).toBe(39);
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect({ id: p.id, title: typeof p.title === 'string' && p.title.trim() !== '' }).toEqual({ id: p.id, title: true });
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    }
    expect(queryPanels.length).toBeGreaterThan(0);
    for (const p of queryPanels) {
      expect({ panel: p.title, datasource: p.datasource }).toEqual({ panel: p.title, datasource: DATASOURCE });
      expect(targetsOf(p).length).toBeGreaterThan(0);
      for (const t of targetsOf(p))
        expect({ panel: p.title, refId: t.refId, datasource: t.datasource }).toEqual({ panel: p.title, refId: t.refId, datasource: DATASOURCE });
    }
    const source = dashboard.templating.list.find((v) => v.name === 'DS_PROMETHEUS');
    expect(source).toMatchObject({ type: 'datasource', query: 'prometheus' });
  });

  it('queries in valid PromQL, every selector naming its metric', () => {
    expect(everyExpr.length).toBeGreaterThan(0);
    for (const { panel, refId, expr } of everyExpr) {
      const metrics = selectorsOf(expr).map((s) => s.metric);
      expect({ panel, refId, selectors: metrics.length > 0, unnamed: metrics.filter((m) => m === '') }).toEqual({ panel, refId, selectors: true, unnamed: [] });
    }
  });

  it('uses no template variable it does not define', () => {
    const defined = new Set(dashboard.templating.list.map((v) => v.name));
    for (const { panel, expr } of everyExpr) {
      for (const [, name] of expr.replace(BUILT_IN_INTERVALS, '').matchAll(/\$\{?(\w+)/g))
        expect({ panel, variable: name, defined: defined.has(name!) }).toEqual({ panel, variable: name, defined: true });
    }
  });

  it('has a funnel panel on the PAR, authorization-code and token steps, a latency panel with p50, p95 and p99, and a certificate expiry panel with 7/14/30-day thresholds', () => {
    const stepsOf = (title: string) =>
      new Set(
        targetsOf(panels.find((p) => p.title === title)!)
          .flatMap((t) => selectorsOf(t.expr))
          .filter((s) => s.metric === 'moat_funnel_total')
          .flatMap((s) => s.matchers.filter((m) => m.label === 'step' && m.op === '=').map((m) => m.value)),
      );
    for (const title of ['Funnel rate', 'Funnel over the time range']) expect([...stepsOf(title)].sort()).toEqual(['code_issued', 'code_redeemed', 'par']);

    const latency = targetsOf(panels.find((p) => p.title === 'Latency p50 / p95 / p99')!);
    expect(latency.map((t) => /^histogram_quantile\((0\.\d+),/.exec(t.expr)?.[1])).toEqual(['0.5', '0.95', '0.99']);
    for (const t of latency) expect(selectorsOf(t.expr).map((s) => s.metric)).toEqual(['moat_http_request_duration_seconds_bucket']);

    const expiry = panels.find((p) => p.title === 'Days to expiry per TPP certificate') as Panel & {
      fieldConfig: { defaults: { thresholds: { steps: { value: number | null }[] } } };
    };
    expect(targetsOf(expiry).flatMap((t) => selectorsOf(t.expr).map((s) => s.metric))).toEqual(['moat_certificate_days_to_expiry']);
    expect(expiry.fieldConfig.defaults.thresholds.steps.map((s) => s.value)).toEqual([null, 7, 14, 30]);
  });

  it('tells mTLS transport failures apart from OAuth errors', () => {
    const outcomes = (title: string) =>
      targetsOf(panels.find((p) => p.title === title)!)
        .flatMap((t) => selectorsOf(t.expr))
        .flatMap((s) => s.matchers.filter((m) => m.label === 'outcome').map((m) => `${m.op}${m.value}`));
    expect(outcomes('mTLS transport failures by outcome')).toEqual(['=~mtls_.*']);
    expect(outcomes('OAuth errors by code and endpoint')).toEqual(['!~mtls_.*|rate_limited']);
    expect(outcomes('Outcome classes')).toEqual(expect.arrayContaining(['=~mtls_.*', '!~mtls_.*|rate_limited']));
  });

  describe('against a running Moat', () => {
    let started: { h: Harness; tpp: RegisteredTpp };
    let exposition: string;
    useMoatWithTpp((s) => {
      started = s;
    });
    beforeAll(async () => {
      await authorizationCodeFlow(started.h, started.tpp);
      exposition = await scrapeMetrics(started.h);
    });

    it("exports every metric the dashboard queries (its # TYPE lines on the admin listener's /metrics)", () => {
      const families = metricFamilies(exposition);
      const used = new Set<string>();
      for (const { panel, refId, expr } of everyExpr) {
        for (const { metric } of selectorsOf(expr)) {
          expect({ panel, refId, metric, family: familyOf(metric, families) !== undefined }).toEqual({ panel, refId, metric, family: true });
          used.add(familyOf(metric, families)!);
        }
      }
      for (const v of dashboard.templating.list.filter((t) => t.type === 'query')) {
        const query = typeof v.query === 'string' ? v.query : v.query.query;
        const [, metric] = /^label_values\((\w+),\s*\w+\)$/.exec(query) ?? [];
        expect({ variable: v.name, metric, exported: families.has(metric ?? '') }).toEqual({ variable: v.name, metric, exported: true });
      }
      // Every Moat metric family is on the dashboard (the process metrics are a choice of two).
      const moatFamilies = [...families.keys()].filter((f) => f.startsWith('moat_') && !f.startsWith('moat_process_'));
      expect(moatFamilies.filter((f) => !used.has(f))).toEqual([]);
    });

    it('filters each metric only on labels it carries', () => {
      const labelsOf = (metric: string) =>
        new Set([...exposition.matchAll(new RegExp(`^${metric}\\{([^}]*)\\}`, 'gm'))].flatMap((m) => [...m[1]!.matchAll(/(\w+)="/g)].map((l) => l[1]!)));
      for (const { panel, expr } of everyExpr) {
        for (const { metric, matchers } of selectorsOf(expr)) {
          const carried = labelsOf(metric);
          // `job` and `instance` are Prometheus's own target labels; a family with no series yet cannot be judged.
          if (carried.size === 0) continue;
          for (const { label } of matchers.filter((m) => m.label !== 'job' && m.label !== 'instance'))
            expect({ panel, metric, label, carried: carried.has(label) }).toEqual({ panel, metric, label, carried: true });
        }
      }
    });

    it('has the funnel series after a PAR → code → token flow', () => {
      for (const step of ['par', 'code_issued', 'code_redeemed'])
        expect({ step, count: sampleSum(exposition, 'moat_funnel_total', { step }) > 0 }).toEqual({ step, count: true });
      expect(sampleSum(exposition, 'moat_tokens_issued_total', { kind: 'AccessToken' })).toBeGreaterThan(0);
      expect(sampleSum(exposition, 'moat_ready')).toBe(1);
    });
  });
});

describe('the monitoring profile of docker-compose.yml', () => {
  type Service = { profiles?: string[]; environment?: Record<string, string>; volumes?: string[]; ports?: string[] };
  const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
  const { moat, prometheus, grafana } = compose.services;
  /** The host path mounted at `containerPath` (or at a directory above it) in a service. */
  const hostPathOf = (service: Service, containerPath: string) => {
    for (const volume of service.volumes ?? []) {
      const [host = '', inside = ''] = volume.split(':');
      if (containerPath === inside || containerPath.startsWith(`${inside}/`)) return join(host, containerPath.slice(inside.length));
    }
    return undefined;
  };
  const containerPathOf = (service: Service, hostPath: string) => (service.volumes ?? []).map((v) => v.split(':')).find(([host]) => host === hostPath)?.[1];

  it('adds Prometheus and Grafana only with --profile monitoring', () => {
    expect(prometheus?.profiles).toEqual(['monitoring']);
    expect(grafana?.profiles).toEqual(['monitoring']);
    expect(moat?.profiles).toBeUndefined();
  });

  it("has Prometheus scrape every Moat replica's admin listener, with the token Moat requires", () => {
    const env = Object.fromEntries(Object.entries(moat!.environment!).filter(([k]) => k !== 'MOAT_CONFIG'));
    const { config } = loadConfig({ file: join(ROOT, 'deploy', 'moat.production.yaml'), env, cwd: ROOT });
    expect(['127.0.0.1', '::1', 'localhost']).not.toContain(config.admin.host);
    const scrape = parse(read('deploy', 'prometheus', 'prometheus.yml')) as {
      scrape_configs: {
        job_name: string;
        metrics_path?: string;
        dns_sd_configs: { names: string[]; type: string; port: number }[];
        authorization: { type: string; credentials_file: string };
      }[];
    };
    const job = scrape.scrape_configs.find((j) => j.job_name === 'moat')!;
    expect(job.metrics_path ?? '/metrics').toBe('/metrics');
    expect(job.dns_sd_configs).toEqual([expect.objectContaining({ names: ['moat'], type: 'A', port: config.admin.port })]);
    expect(job.authorization.type).toBe('Bearer');
    // The file Prometheus sends is the file Moat checks against.
    expect(hostPathOf(prometheus!, job.authorization.credentials_file)).toBe(hostPathOf(moat!, config.admin.tokenFile!));
    expect(prometheus!.volumes).toContain('./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
  });

  it('gives Grafana the Prometheus data source and provisions this dashboard from its file', () => {
    const provisioning = containerPathOf(grafana!, './deploy/grafana/provisioning');
    expect(provisioning).toBe('/etc/grafana/provisioning');
    const { datasources } = parse(read('deploy', 'grafana', 'provisioning', 'datasources', 'prometheus.yml')) as {
      datasources: { type: string; url: string; isDefault: boolean }[];
    };
    expect(datasources).toEqual([expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090', isDefault: true })]);
    const { providers } = parse(read('deploy', 'grafana', 'provisioning', 'dashboards', 'moat.yml')) as {
      providers: { type: string; options: { path: string } }[];
    };
    expect(providers).toHaveLength(1);
    expect(providers[0]!.type).toBe('file');
    const dashboards = hostPathOf(grafana!, providers[0]!.options.path)!;
    expect(readdirSync(join(ROOT, dashboards))).toContain('moat.json');
  });
});
