//! The Helm chart, linted and rendered with the Helm v4 SDK (tests/chart_test.py).

mod support;

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
