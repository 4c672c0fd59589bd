//! Microsoft Graph as the back-end of the plan's Entra writes: the federated identity
//! credentials on Entra applications ([`EntraAction`], and no other action).

use super::GraphReader;
use crate::model::call::{Failure, Written};
use crate::plan::EntraAction;
use crate::ports::Write;

#[async_trait::async_trait]
impl Write<EntraAction> for GraphReader {
    /// One federated identity credential written ([`GraphReader::write_credential`]).
    async fn write(&self, action: &EntraAction, _use_revision: bool) -> Result<Written, Failure> {
        self.write_credential(action).await
    }
}
