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
