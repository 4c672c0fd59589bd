//! One reading of an ARN, `arn:partition:service:region:account:resource`, for every
//! place that takes one apart.

/// The six fields of an ARN (a view of a [`super::names::Arn`] or any ARN text); `region` and `account` are empty where the service has none
/// (IAM has no region; S3 buckets no account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArnParts<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub partition: &'a str,
    /// `iam`, `lambda`, `sts`, ...
    pub service: &'a str,
    /// The region, or empty.
    pub region: &'a str,
    /// The account id, or empty (`aws` for AWS managed policies).
    pub account: &'a str,
    /// Everything after the fifth colon (`role/path/name`, `function:name:qualifier`).
    pub resource: &'a str,
}

/// The partitions AWS documents.
pub const PARTITIONS: [&str; 5] = ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"];

impl<'a> ArnParts<'a> {
    /// The fields of `s`, when it starts with `arn:` and has all six.
    pub fn parse(s: &'a str) -> Option<Self> {
        let mut f = s.splitn(6, ':');
        if f.next()? != "arn" {
            return None;
        }
        Some(ArnParts {
            partition: f.next()?,
            service: f.next()?,
            region: f.next()?,
            account: f.next()?,
            resource: f.next()?,
        })
    }

    /// A well-formed ARN: a known partition, a service and a resource.
    pub fn parse_known(s: &'a str) -> Option<Self> {
        Self::parse(s).filter(|a| {
            PARTITIONS.contains(&a.partition) && !a.service.is_empty() && !a.resource.is_empty()
        })
    }

    /// An IAM ARN's resource: IAM names no region.
    pub fn iam_resource(&self) -> Option<&'a str> {
        (self.service == "iam" && self.region.is_empty()).then_some(self.resource)
    }

    /// The role name of an IAM role ARN (its path left off).
    pub fn role_name(&self) -> Option<&'a str> {
        let path_and_name = self.iam_resource()?.strip_prefix("role/")?;
        path_and_name.rsplit('/').next().filter(|n| !n.is_empty())
    }

    /// The function name of a Lambda function ARN (its qualifier left off).
    pub fn function_name(&self) -> Option<&'a str> {
        if self.service != "lambda" {
            return None;
        }
        let rest = self.resource.strip_prefix("function:")?;
        rest.split(':').next().filter(|n| !n.is_empty())
    }
}

/// A function ARN without its qualifier (`...:function:NAME:live` -> `...:function:NAME`);
/// any other text as it is.
pub fn unqualified(arn: &str) -> &str {
    match arn.match_indices(':').nth(6) {
        Some((i, _))
            if ArnParts::parse(arn)
                .and_then(|a| a.function_name())
                .is_some() =>
        {
            &arn[..i]
        }
        _ => arn,
    }
}

/// The account of an ARN, if it names one.
pub fn account_of(arn: &str) -> Option<&str> {
    ArnParts::parse(arn)
        .map(|a| a.account)
        .filter(|a| !a.is_empty())
}

/// The region of an ARN, if it names one (IAM ARNs do not: IAM is global).
pub fn region_of(arn: &str) -> Option<&str> {
    ArnParts::parse(arn)
        .map(|a| a.region)
        .filter(|r| !r.is_empty())
}

/// The region of a KMS key ARN (`arn:<partition>:kms:<region>:<account>:key/<id>`).
pub fn kms_key_region(arn: &str) -> Result<&str, String> {
    match ArnParts::parse(arn) {
        Some(a)
            if !a.partition.is_empty()
                && a.service == "kms"
                && crate::model::account::is_region(a.region)
                && a.account.len() == 12
                && a.account.chars().all(|c| c.is_ascii_digit())
                && a.resource
                    .strip_prefix("key/")
                    .is_some_and(|id| !id.is_empty() && !id.contains('/')) =>
        {
            Ok(a.region)
        }
        _ => Err(format!(
            "`{arn}` is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>): the controller's policy grants kms:Sign on that one key, which an alias or a bare id cannot name"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_roles_and_functions() {
        let role = ArnParts::parse("arn:aws:iam::111122223333:role/team/deployer").unwrap();
        assert_eq!(role.account, "111122223333");
        assert_eq!(role.role_name(), Some("deployer"));
        assert_eq!(role.function_name(), None);
        let f = ArnParts::parse("arn:aws:lambda:eu-west-1:111122223333:function:fn:live").unwrap();
        assert_eq!((f.region, f.function_name()), ("eu-west-1", Some("fn")));
        assert_eq!(f.role_name(), None);
        assert_eq!(region_of("arn:aws:iam::111122223333:role/x"), None);
        assert_eq!(account_of("arn:aws:s3:::bucket"), None);
        assert!(ArnParts::parse("arn:aws:iam::1").is_none());
        assert!(ArnParts::parse("urn:aws:iam::1:role/x").is_none());
        assert!(ArnParts::parse_known("arn:aws-xx:iam::1:role/x").is_none());
        assert!(ArnParts::parse_known("arn:aws-us-gov:iam::1:role/x").is_some());
        assert_eq!(
            unqualified("arn:aws:lambda:eu-west-1:111122223333:function:fn:live"),
            "arn:aws:lambda:eu-west-1:111122223333:function:fn"
        );
        assert_eq!(unqualified("fn"), "fn");
        // A policy resource may name a role by pattern: the name is what follows the path.
        let sts = ArnParts::parse("arn:aws:sts::111122223333:assumed-role/r/s").unwrap();
        assert_eq!(sts.iam_resource(), None);
    }
}
