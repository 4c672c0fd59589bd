//! The vocabulary every stage shares and that depends on no SDK: IAM policy documents and
//! their semantic comparison ([`iam_policy`]), what an AWS call came to ([`call`]), and the
//! names that must not be mixed up ([`names`]), the AWS accounts a pass manages
//! ([`account`]) and the one ARN reader ([`arn`]) and the one
//! reading of the wall clock ([`clock`]).

pub mod account;
pub mod arn;
pub mod call;
pub mod clock;
pub mod iam_policy;
pub mod names;
