#!/usr/bin/env python3
"""Checks the shipped Grafana dashboard and Prometheus rules against a live /metrics.

usage: monitoring-check.py METRICS_TEXT DASHBOARD_JSON RULES_YML

- every holterd_* metric the dashboard or the rules read is one the daemon exports
  (a histogram's _bucket/_sum/_count count as the histogram);
- every dashboard query is valid PromQL: they are written into a temporary rules
  file (Grafana's $__rate_interval and $instance filled in) for `promtool check rules`.
Exits non-zero, naming what is wrong.
"""
import json, os, re, subprocess, sys, tempfile

metrics_text, dashboard_path, rules_path = sys.argv[1:4]
exported = set()
for line in open(metrics_text):
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        exported.add(m.group(1))
if not exported:
    sys.exit(f"{metrics_text}: no metrics in it (was the daemon's /metrics fetched?)")

dashboard = json.load(open(dashboard_path))
queries = []
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            queries.append((p.get("title", "?"), t["expr"]))
        walk(p.get("panels", []))
walk(dashboard["panels"])
rules_text = open(rules_path).read()

def used(text):
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"\bholterd_[a-z0-9_]+", text)}

problems = []
for title, expr in queries:
    for name in sorted(used(expr) - exported):
        problems.append(f"dashboard panel {title!r} reads {name}, which /metrics does not export")
for name in sorted(used(rules_text) - exported):
    problems.append(f"{rules_path} reads {name}, which /metrics does not export")

with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, expr) in enumerate(queries):
        e = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
        f.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(e)}\n")
    tmp = f.name
r = subprocess.run(["promtool", "check", "rules", tmp], capture_output=True, text=True)
os.unlink(tmp)
if r.returncode != 0:
    problems.append("a dashboard query is not valid PromQL:\n" + r.stdout + r.stderr)

if problems:
    sys.exit("\n".join(problems))
print(f"{len(queries)} dashboard queries and the rules read only exported metrics ({len(exported)} exported); the queries parse")
