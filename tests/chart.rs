//! The Helm chart, linted and rendered with the Helm v4 SDK (tests/chart_test.py).

mod support;

/// What the controller exports, as the chart's alerts and dashboard may use it: every
/// series name, the label names of each, and the label values the code can give (pass
/// outcomes, mapping states). Read from the metrics' own registry, with one sample in
/// each labelled family so that its label names show.
fn exported_metrics() -> serde_json::Value {
    use trustsync::runtime::metrics::*;
    let mut registry = prometheus_client::registry::Registry::default();
    let m = Metrics::register(&mut registry);
    let outcome = OutcomeLabel {
        outcome: "x".into(),
    };
    let action = ActionLabel { action: "x".into() };
    let service = ServiceLabel {
        service: "x".into(),
    };
    let account = AccountLabel {
        account: "x".into(),
    };
    m.passes.get_or_create(&outcome).inc();
    m.graph_notifications.get_or_create(&outcome).inc();
    m.changes_applied.get_or_create(&action).inc();
    m.changes_failed.get_or_create(&action).inc();
    m.drift_detected.get_or_create(&action).inc();
    m.api_requests
        .get_or_create(&ApiLabel {
            service: "x".into(),
            operation: "x".into(),
        })
        .inc();
    m.api_retries.get_or_create(&service).inc();
    m.throttled.get_or_create(&service).inc();
    m.mappings
        .get_or_create(&StateLabel { state: "x".into() })
        .set(1);
    m.account_reachable.get_or_create(&account).set(1);
    m.account_changes_failed.get_or_create(&account).inc();
    let feed = FeedLabel { feed: "x".into() };
    m.directory_feed_up.get_or_create(&feed).set(1);
    m.directory_feed_failures.get_or_create(&feed).inc();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let mut series = serde_json::Map::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let names: Vec<String> = match kind {
                "counter" => vec![format!("{name}_total")],
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{name}{s}"))
                    .collect(),
                _ => vec![name.to_string()],
            };
            for n in names {
                let labels: Vec<&str> = if n.ends_with("_bucket") {
                    vec!["le"]
                } else {
                    vec![]
                };
                series.insert(n, serde_json::json!(labels));
            }
        } else if !line.starts_with('#') {
            // name{a="x",b="x"} value
            if let Some((name, rest)) = line.split_once('{') {
                let labels: Vec<String> = rest
                    .split('}')
                    .next()
                    .unwrap()
                    .split(',')
                    .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
                    .collect();
                if let Some(serde_json::Value::Array(known)) = series.get_mut(name) {
                    for l in labels {
                        if !known.contains(&serde_json::json!(l)) {
                            known.push(serde_json::json!(l));
                        }
                    }
                }
            }
        }
    }
    use trustsync::model::call::PassOutcome;
    let outcomes: Vec<&str> = [
        PassOutcome::Success,
        PassOutcome::Held,
        PassOutcome::Failed,
        PassOutcome::Interrupted,
    ]
    .iter()
    .map(|o| o.as_str())
    .collect();
    let states: Vec<&str> = trustsync::runtime::status::MappingState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    serde_json::json!({
        "series": series,
        "values": {
            "trustsync_passes_total": {"outcome": outcomes},
            "trustsync_mappings": {"state": states},
            "trustsync_graph_notifications_total": {"outcome": ["poll", "ignored"]},
        },
    })
}

#[test]
fn helm_chart_lints_and_renders() {
    let python = support::repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "run `make test`: it installs the Helm SDK into .venv"
    );
    let out = std::process::Command::new(python)
        .arg(support::repo().join("tests/chart_test.py"))
        .env("TRUSTSYNC_BIN", env!("CARGO_BIN_EXE_trustsync"))
        .env("TRUSTSYNC_METRICS", exported_metrics().to_string())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chart tests failed:\n{err}");
    assert!(err.contains("OK"), "{err}");
}

/// A change under way at SIGTERM must finish or fail before the pod is killed: one
/// request's whole retry budget, plus its last attempt, stays below the chart's grace
/// period (and shutdown also ends any retry wait at once).
#[test]
fn a_write_retry_budget_fits_in_the_termination_grace_period() {
    let template =
        std::fs::read_to_string(support::repo().join("charts/trustsync/templates/_pod.tpl"))
            .unwrap();
    let grace: u64 = template
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
        .expect("the chart sets terminationGracePeriodSeconds")
        .trim()
        .parse()
        .unwrap();
    let values =
        std::fs::read_to_string(support::repo().join("charts/trustsync/values.yaml")).unwrap();
    assert!(
        !values.contains("maxRetrySeconds") && !values.contains("requestTimeoutSeconds"),
        "the chart's config keeps the defaults checked here"
    );
    let aws = trustsync::config::Config::default().aws;
    let budget = aws.max_retry_seconds + aws.request_timeout_seconds;
    assert!(
        budget < grace,
        "retry budget {budget}s must stay below the {grace}s grace period"
    );
}
