//! `promtool test rules` input from captured `/metrics`: each captured sample
//! becomes an input series `metric{job,instance,site,labels…}` with one value
//! per minute of the test's timeline, as Prometheus would have stored it had
//! it scraped the gateway once a minute.
//!
//! - A gateway's timeline is one entry per minute: `Some(capture)` (the
//!   capture in force that minute; a capture may hold several minutes) or
//!   `None`, a failed scrape.
//! - `up` is 1 for a capture, 0 for a failed scrape; a series that stops
//!   being exported gets a staleness marker, as Prometheus writes one.
//! - `edgereach_time_seconds` is the only value rewritten: it is moved from
//!   the capture's wall clock onto the test's (value - capture time + minute),
//!   so `timestamp(x) - x` stays the skew the capture saw.
//! - The alerts' annotations are rendered from `docs/monitoring/rules.yml`
//!   (only `{{ $labels.NAME }}` is supported, which is all the rules use).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write;

/// One `/metrics` body and the fetcher's wall clock (Unix seconds) just
/// before it asked.
#[derive(Clone, Debug)]
pub struct Capture {
    pub wall: f64,
    pub text: String,
}

/// A scrape target: what Prometheus adds to every series.
#[derive(Clone, Debug)]
pub struct Target {
    pub instance: String,
    pub site: String,
}

impl Target {
    fn labels(&self) -> String {
        format!(
            "job=\"edgereach\",instance=\"{}\",site=\"{}\"",
            self.instance, self.site
        )
    }
}

/// One sample line: `name`, the text between `{` and `}` (empty if none),
/// the value.
pub fn parse_sample(line: &str) -> Option<(&str, &str, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    match series.split_once('{') {
        Some((name, rest)) => Some((name, rest.strip_suffix('}')?, value)),
        None => Some((series, "", value)),
    }
}

fn number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// series selector -> one value (`_` = none) per minute.
pub type Series = BTreeMap<String, Vec<String>>;

/// The input series of every target's timeline (all the same length).
pub fn input_series(timelines: &[(Target, Vec<Option<Capture>>)]) -> Series {
    let mut out = Series::new();
    for (t, slots) in timelines {
        let n = slots.len();
        let mut mine = Series::new();
        let up = format!("up{{{}}}", t.labels());
        mine.insert(up.clone(), vec!["_".into(); n]);
        for (minute, cap) in slots.iter().enumerate() {
            let Some(cap) = cap else {
                mine.get_mut(&up).expect("up")[minute] = "0".into();
                continue;
            };
            mine.get_mut(&up).expect("up")[minute] = "1".into();
            for (name, labels, v) in cap.text.lines().filter_map(parse_sample) {
                let sep = if labels.is_empty() { "" } else { "," };
                let key = format!("{name}{{{}{sep}{labels}}}", t.labels());
                let v = if name == "edgereach_time_seconds" {
                    v - cap.wall + (minute * 60) as f64
                } else {
                    v
                };
                mine.entry(key).or_insert_with(|| vec!["_".into(); n])[minute] = number(v);
            }
        }
        for values in mine.values_mut() {
            for i in 1..n {
                if values[i] == "_" && values[i - 1] != "_" && values[i - 1] != "stale" {
                    values[i] = "stale".into();
                }
            }
        }
        out.extend(mine);
    }
    out
}

fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An alert expected to fire: its target and labels beyond job, instance,
/// site (the rule's own, e.g. `severity`, are added from rules.yml).
#[derive(Clone, Debug)]
pub struct Firing {
    pub target: Target,
    pub labels: Vec<(String, String)>,
}

/// `alertname` at minute `at`: exactly these fire.
#[derive(Clone, Debug)]
pub struct Expect {
    pub at: usize,
    pub alert: String,
    pub firing: Vec<Firing>,
}

/// A rule from rules.yml: its fixed labels and annotation templates.
#[derive(Clone, Debug, Default)]
pub struct Rule {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
}

/// The alerting rules of a rules file written the way docs/monitoring/rules.yml
/// is (block style, one `key: value` a line under `labels:`/`annotations:`).
pub fn alert_rules(yaml: &str) -> BTreeMap<String, Rule> {
    let mut rules = BTreeMap::<String, Rule>::new();
    let mut current: Option<String> = None;
    let mut block: Option<(usize, bool)> = None; // (indent, is annotations)
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let l = line.trim();
        if let Some(name) = l.strip_prefix("- alert: ") {
            current = Some(name.trim().to_string());
            rules.entry(name.trim().to_string()).or_default();
            block = None;
            continue;
        }
        if l.starts_with("- ") {
            current = None;
            block = None;
            continue;
        }
        let Some(name) = &current else { continue };
        if l == "labels:" || l == "annotations:" {
            block = Some((indent, l == "annotations:"));
            continue;
        }
        match block {
            Some((bi, ann)) if indent > bi && !l.is_empty() && !l.starts_with('#') => {
                if let Some((k, v)) = l.split_once(": ") {
                    let v = v.trim().trim_matches('"').to_string();
                    let rule = rules.get_mut(name).expect("rule");
                    let list = if ann {
                        &mut rule.annotations
                    } else {
                        &mut rule.labels
                    };
                    list.push((k.to_string(), v));
                }
            }
            Some((bi, _)) if indent <= bi && !l.is_empty() => block = None,
            _ => {}
        }
    }
    rules
}

/// `{{ $labels.NAME }}` replaced; panics on any other template.
pub fn render(template: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("unclosed {{") + start;
        let inner = rest[start + 2..end].trim();
        let name = inner
            .strip_prefix("$labels.")
            .unwrap_or_else(|| panic!("unsupported template {inner}"));
        out.push_str(labels.get(name).map(String::as_str).unwrap_or(""));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A `promql_expr_test`: `expr` at minute `at` gives exactly `samples`
/// (series, value).
#[derive(Clone, Debug)]
pub struct ExprTest {
    pub at: usize,
    pub expr: String,
    pub samples: Vec<(String, f64)>,
}

/// A whole `promtool test rules` file.
pub fn test_file(
    rules_path: &str,
    series: &Series,
    rules: &BTreeMap<String, Rule>,
    expects: &[Expect],
    exprs: &[ExprTest],
) -> String {
    let mut y = String::new();
    let _ = writeln!(
        y,
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:",
        yaml_quote(rules_path)
    );
    for (k, v) in series {
        let _ = writeln!(
            y,
            "      - series: {}\n        values: {}",
            yaml_quote(k),
            yaml_quote(&v.join(" "))
        );
    }
    y.push_str("    alert_rule_test:\n");
    for e in expects {
        let rule = rules
            .get(&e.alert)
            .unwrap_or_else(|| panic!("no alert {} in the rules", e.alert));
        let _ = writeln!(
            y,
            "      - eval_time: {}m\n        alertname: {}",
            e.at, e.alert
        );
        if e.firing.is_empty() {
            y.push_str("        exp_alerts: []\n");
            continue;
        }
        y.push_str("        exp_alerts:\n");
        for f in &e.firing {
            let mut labels = BTreeMap::new();
            labels.insert("job".to_string(), "edgereach".to_string());
            labels.insert("instance".to_string(), f.target.instance.clone());
            labels.insert("site".to_string(), f.target.site.clone());
            labels.extend(f.labels.iter().cloned());
            labels.extend(rule.labels.iter().cloned());
            y.push_str("          - exp_labels:\n");
            for (k, v) in &labels {
                let _ = writeln!(y, "              {k}: {}", yaml_quote(v));
            }
            y.push_str("            exp_annotations:\n");
            for (k, v) in &rule.annotations {
                let _ = writeln!(y, "              {k}: {}", yaml_quote(&render(v, &labels)));
            }
        }
    }
    if !exprs.is_empty() {
        y.push_str("    promql_expr_test:\n");
        for e in exprs {
            let _ = writeln!(
                y,
                "      - expr: {}\n        eval_time: {}m\n        exp_samples:",
                yaml_quote(&e.expr),
                e.at
            );
            for (labels, value) in &e.samples {
                let _ = writeln!(
                    y,
                    "          - labels: {}\n            value: {value}",
                    yaml_quote(labels)
                );
            }
        }
    }
    y
}
