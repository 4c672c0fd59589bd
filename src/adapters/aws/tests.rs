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

/// The membership fast path's requests go ahead of a full pass's already waiting in the
/// same limit, and the limit holds for all of them together.
#[tokio::test(start_paused = true)]
async fn an_urgent_request_goes_before_those_waiting_and_the_rate_holds() {
    use std::sync::{Arc, Mutex};
    let limiter = Arc::new(RateLimiter::new(10.0));
    let start = tokio::time::Instant::now();
    let done: Arc<Mutex<Vec<(&str, Duration)>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (l, d) = (limiter.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            l.acquire().await;
            d.lock().unwrap().push(("full", start.elapsed()));
        }));
    }
    // The full pass's eight are waiting; a fast pass's request comes 150 ms later.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (l, d) = (limiter.clone(), done.clone());
    tasks.push(tokio::spawn(urgent(async move {
        l.acquire().await;
        d.lock().unwrap().push(("fast", start.elapsed()));
    })));
    for t in tasks {
        t.await.unwrap();
    }
    let done = done.lock().unwrap();
    let fast = done.iter().find(|(who, _)| *who == "fast").unwrap().1;
    assert_eq!(
        fast,
        Duration::from_millis(200),
        "the next slot after it came, not the ninth: {done:?}"
    );
    let mut at: Vec<Duration> = done.iter().map(|(_, t)| *t).collect();
    at.sort();
    assert!(
        at.windows(2)
            .all(|w| w[1] - w[0] >= Duration::from_millis(100)),
        "ten a second, urgent or not: {at:?}"
    );
    assert_eq!(at.len(), 9);
    assert_eq!(*at.last().unwrap(), Duration::from_millis(800));
}

#[test]
fn lambda_operations_fall_into_their_quota_classes() {
    use Operation::*;
    assert_eq!(
        GetFunctionConfiguration.rate_class(),
        RateClass::LambdaGetFunction
    );
    assert_eq!(GetPolicy.rate_class(), RateClass::LambdaGetPolicy);
    for op in [GetAlias, AddPermission, RemovePermission, TagResource] {
        assert_eq!(op.rate_class(), RateClass::LambdaControlPlane, "{op:?}");
    }
    assert_eq!(CreateRole.rate_class(), RateClass::Iam);
    assert_eq!(GetResources.rate_class(), RateClass::Tagging);
    assert_eq!(GetCallerIdentity.service(), Service::Sts);
    // Every class is used; all but CloudWatch Logs (one write per pass) has a limiter.
    let classes: BTreeSet<RateClass> = Operation::ALL.iter().map(|o| o.rate_class()).collect();
    assert_eq!(classes.len(), 10, "{classes:?}");
    assert_eq!(ListAccountsForParent.rate_class(), RateClass::Organizations);
    assert_eq!(PutLogEvents.rate_class(), RateClass::Logs);
    let limits = Limiters::new(&crate::config::RequestRates::default());
    assert!(classes
        .iter()
        .all(|c| limits.of(*c).is_some() == (*c != RateClass::Logs)));
    // Identity Center at its documented quotas by default: SSO admin one budget across
    // its APIs, the identity store one per API.
    assert_eq!(CreatePermissionSet.rate_class(), RateClass::IdentityCenter);
    assert_eq!(
        ProvisionPermissionSet.rate_class(),
        RateClass::IdentityCenter
    );
    assert_eq!(CreateUser.rate_class(), RateClass::IdentityStore);
    let (user, member) = (
        limits.for_op(CreateUser).unwrap() as *const RateLimiter,
        limits.for_op(CreateGroupMembership).unwrap() as *const RateLimiter,
    );
    assert_ne!(user, member, "one identity-store budget per API");
    assert!(std::ptr::eq(
        limits.for_op(CreatePermissionSet).unwrap(),
        limits.for_op(CreateAccountAssignment).unwrap()
    ));
    let rates = crate::config::RequestRates::default();
    assert_eq!(
        (rates.identity_center, rates.identity_store_per_api),
        (20.0, 20.0)
    );
}
