use super::*;

#[tokio::test(start_paused = true)]
async fn the_rate_limiter_spaces_requests() {
    let limiter = RateLimiter::new(10.0);
    let start = tokio::time::Instant::now();
    for _ in 0..5 {
        limiter.acquire().await;
    }
    // The first goes at once, the next four 100 ms apart.
    assert_eq!(start.elapsed(), Duration::from_millis(400));
    let unlimited = RateLimiter::new(0.0);
    let start = tokio::time::Instant::now();
    for _ in 0..100 {
        unlimited.acquire().await;
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[test]
fn lambda_operations_fall_into_their_quota_classes() {
    use Operation::*;
    assert_eq!(GetFunctionConfiguration.rate_class(), "lambdaGetFunction");
    assert_eq!(GetPolicy.rate_class(), "lambdaGetPolicy");
    for op in [GetAlias, AddPermission, RemovePermission, TagResource] {
        assert_eq!(op.rate_class(), "lambdaControlPlane", "{op:?}");
    }
    assert_eq!(CreateRole.rate_class(), "iam");
    assert_eq!(GetResources.rate_class(), "tagging");
    assert_eq!(GetCallerIdentity.service(), Service::Sts);
    // Every class but CloudWatch Logs (one write per pass) has a limiter in the client.
    let classes: BTreeSet<&str> = Operation::ALL.iter().map(|o| o.rate_class()).collect();
    assert_eq!(classes.len(), 8, "{classes:?}");
    assert_eq!(ListAccountsForParent.rate_class(), "organizations");
    assert_eq!(PutLogEvents.rate_class(), "logs");
}
