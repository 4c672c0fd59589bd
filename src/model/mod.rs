//! The vocabulary every stage shares and that depends on no SDK: IAM policy documents and
//! their semantic comparison ([`iam_policy`]), and what an AWS call came to ([`call`]).

pub mod call;
pub mod iam_policy;
