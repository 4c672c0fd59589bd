//! Microsoft Graph change-notification subscriptions on groups ("subscription resource
//! type", "Create subscription", "Update subscription", "subscription: reauthorize"): the
//! controller's one subscription is made, renewed, reauthorized and deleted here.

use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::graph::{parse, Error, GraphReader};

/// A subscription as Graph answers its creation (the fields trustsync keeps).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSubscription {
    id: String,
    expiration_date_time: String,
}

/// A subscription Graph accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// Its id.
    pub id: String,
    /// When it expires, as Graph says (RFC 3339).
    pub expires: String,
}

fn expiration(minutes: u64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::minutes(minutes as i64))
        .format(&Rfc3339)
        .unwrap_or_default()
}

impl GraphReader {
    /// Subscribes `url` to changes of groups (`changeType: updated,deleted`, which covers
    /// membership changes), with `url` as the lifecycle URL too, for `minutes`. Graph
    /// validates the endpoint before it answers.
    pub async fn subscribe(
        &self,
        url: &str,
        client_state: &str,
        minutes: u64,
    ) -> Result<Subscribed, Error> {
        let body = json!({
            "changeType": "updated,deleted",
            "notificationUrl": url,
            "lifecycleNotificationUrl": url,
            "resource": "groups",
            "expirationDateTime": expiration(minutes),
            "clientState": client_state,
        });
        let (answer, _) = self
            .send(
                "POST subscriptions",
                |c| c.subscriptions().create_subscription(&body),
                None,
            )
            .await?;
        let s: WireSubscription = parse("POST subscriptions", answer)?;
        Ok(Subscribed {
            id: s.id,
            expires: s.expiration_date_time,
        })
    }

    /// Moves the subscription's expiry `minutes` ahead; returns the new one.
    pub async fn renew(&self, id: &str, minutes: u64) -> Result<String, Error> {
        let expires = expiration(minutes);
        let body = json!({ "expirationDateTime": expires });
        self.send(
            "PATCH subscriptions",
            |c| c.subscription(id).update_subscription(&body),
            None,
        )
        .await?;
        Ok(expires)
    }

    /// Reauthorizes the subscription (after a `reauthorizationRequired` notification).
    pub async fn reauthorize(&self, id: &str) -> Result<(), Error> {
        self.send(
            "POST subscriptions/reauthorize",
            |c| c.subscription(id).reauthorize(),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Deletes the subscription.
    pub async fn unsubscribe(&self, id: &str) -> Result<(), Error> {
        self.send(
            "DELETE subscriptions",
            |c| c.subscription(id).delete_subscription(),
            None,
        )
        .await
        .map(|_| ())
    }
}
