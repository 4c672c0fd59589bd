//! The vocabulary every stage shares and that depends on no SDK: IAM policy documents and
//! their semantic comparison ([`iam_policy`]).

pub mod iam_policy;
