//! Every AWS operation trustsync calls, as one enum: it names the request in errors and
//! statistics, picks the rate limit that spaces it, and grants it in the least-privilege
//! policy ([`super::permissions`]). A request the adapter sends must be an [`Operation`],
//! so the policy cannot fall behind the code.

use super::permissions::Scope;

/// An AWS service trustsync talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Iam,
    Lambda,
    /// STS (the caller identity).
    Sts,
    /// The Resource Groups Tagging API (finding functions by tag).
    Tagging,
    /// CloudWatch Logs (the audit log's anchor).
    Logs,
    /// AWS Organizations (finding the accounts to manage).
    Organizations,
    /// IAM Identity Center's identity store (users, groups, memberships).
    IdentityStore,
    /// IAM Identity Center's administration (instances, permission sets, assignments).
    SsoAdmin,
}

impl Service {
    /// The name in metrics labels and `aws.writeConcurrency`.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Iam => "iam",
            Service::Lambda => "lambda",
            Service::Sts => "sts",
            Service::Tagging => "tagging",
            Service::Logs => "logs",
            Service::Organizations => "organizations",
            Service::IdentityStore => "identitystore",
            Service::SsoAdmin => "sso",
        }
    }
}

macro_rules! operations {
    (@name $op:ident) => { stringify!($op) };
    (@name $op:ident $name:literal) => { $name };
    ($($op:ident $(= $name:literal)?: $service:ident [$(($action:literal, $scope:ident)),+];)+) => {
        /// An AWS operation trustsync calls.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Operation {
            $(#[allow(missing_docs)] $op,)+
        }

        impl Operation {
            /// Every operation.
            pub const ALL: &'static [Operation] = &[$(Operation::$op,)+];

            /// The operation's name, as AWS spells it.
            pub fn name(self) -> &'static str {
                match self {
                    $(Operation::$op => operations!(@name $op $($name)?),)+
                }
            }

            /// The service it belongs to.
            pub fn service(self) -> Service {
                match self {
                    $(Operation::$op => Service::$service,)+
                }
            }

            /// The IAM actions it needs and what each is allowed on.
            pub fn grants(self) -> &'static [(&'static str, Scope)] {
                match self {
                    $(Operation::$op => &[$(($action, Scope::$scope)),+],)+
                }
            }
        }
    };
}

operations! {
    GetCallerIdentity: Sts [("sts:GetCallerIdentity", Free)];
    AssumeRole: Sts [("sts:AssumeRole", SpokeRole)];
    ListChildren: Organizations [("organizations:ListChildren", Discovery)];
    ListAccountsForParent: Organizations [("organizations:ListAccountsForParent", Discovery)];
    ListTagsForResource: Organizations [("organizations:ListTagsForResource", Discovery)];
    GetResources: Tagging [("tag:GetResources", AccountRead)];
    GetAccountAuthorizationDetails: Iam [("iam:GetAccountAuthorizationDetails", AccountRead)];
    ListRoles: Iam [("iam:ListRoles", AccountRead)];
    GetRole: Iam [("iam:GetRole", AccountRead)];
    GetRolePolicy: Iam [("iam:GetRolePolicy", AccountRead)];
    ListOpenIDConnectProviders: Iam [("iam:ListOpenIDConnectProviders", AccountRead)];
    GetOutboundWebIdentityFederationInfo: Iam [("iam:GetOutboundWebIdentityFederationInfo", AccountRead)];
    EnableOutboundWebIdentityFederation: Iam [("iam:EnableOutboundWebIdentityFederation", OutboundEnable)];
    GetOpenIDConnectProvider: Iam [("iam:GetOpenIDConnectProvider", ProviderRead)];
    CreateOpenIDConnectProvider: Iam [("iam:CreateOpenIDConnectProvider", NewProvider)];
    TagOpenIDConnectProvider: Iam [("iam:TagOpenIDConnectProvider", Provider)];
    UntagOpenIDConnectProvider: Iam [("iam:UntagOpenIDConnectProvider", Provider)];
    AddClientIDToOpenIDConnectProvider: Iam [("iam:AddClientIDToOpenIDConnectProvider", Provider)];
    RemoveClientIDFromOpenIDConnectProvider: Iam [("iam:RemoveClientIDFromOpenIDConnectProvider", Provider)];
    DeleteOpenIDConnectProvider: Iam [("iam:DeleteOpenIDConnectProvider", Provider)];
    CreateRole: Iam [("iam:CreateRole", NewRole)];
    TagRole: Iam [("iam:TagRole", NewRole)];
    UpdateAssumeRolePolicy: Iam [("iam:UpdateAssumeRolePolicy", OwnedRole)];
    UpdateRole: Iam [("iam:UpdateRole", OwnedRole)];
    PutRolePermissionsBoundary: Iam [("iam:PutRolePermissionsBoundary", Boundary)];
    DeleteRolePermissionsBoundary: Iam [("iam:DeleteRolePermissionsBoundary", OwnedRole)];
    PutRolePolicy: Iam [("iam:PutRolePolicy", OwnedRole)];
    DeleteRolePolicy: Iam [("iam:DeleteRolePolicy", OwnedRole)];
    AttachRolePolicy: Iam [("iam:AttachRolePolicy", OwnedRole)];
    DetachRolePolicy: Iam [("iam:DetachRolePolicy", OwnedRole)];
    UntagRole: Iam [("iam:UntagRole", OwnedRole)];
    DeleteRole: Iam [("iam:DeleteRole", OwnedRole)];
    GetFunctionConfiguration: Lambda [("lambda:GetFunctionConfiguration", Function)];
    GetAlias: Lambda [("lambda:GetAlias", Function)];
    GetPolicy: Lambda [("lambda:GetPolicy", Function)];
    AddPermission: Lambda [("lambda:AddPermission", Function)];
    RemovePermission: Lambda [("lambda:RemovePermission", Function)];
    UpdateFunctionConfiguration: Lambda [
        ("lambda:UpdateFunctionConfiguration", FunctionConfiguration),
        ("iam:PassRole", PassRole)
    ];
    TagResource: Lambda [("lambda:TagResource", Function)];
    UntagResource: Lambda [("lambda:UntagResource", MarkedFunction)];
    CreateLogStream: Logs [("logs:CreateLogStream", AuditAnchor)];
    PutLogEvents: Logs [("logs:PutLogEvents", AuditAnchor)];
    GetLogEvents: Logs [("logs:GetLogEvents", Verifier)];
    ListInstances: SsoAdmin [("sso:ListInstances", PeopleRead)];
    ListPermissionSets: SsoAdmin [("sso:ListPermissionSets", PeopleRead)];
    DescribePermissionSet: SsoAdmin [("sso:DescribePermissionSet", PeopleRead)];
    ListAccountAssignments: SsoAdmin [("sso:ListAccountAssignments", PeopleRead)];
    ListAccountAssignmentsForPrincipal: SsoAdmin [("sso:ListAccountAssignmentsForPrincipal", PeopleRead)];
    ListAccountsForProvisionedPermissionSet: SsoAdmin [("sso:ListAccountsForProvisionedPermissionSet", PeopleRead)];
    ListUsers: IdentityStore [("identitystore:ListUsers", PeopleRead)];
    ListGroups: IdentityStore [("identitystore:ListGroups", PeopleRead)];
    ListGroupMemberships: IdentityStore [("identitystore:ListGroupMemberships", PeopleRead)];
    GetInlinePolicyForPermissionSet: SsoAdmin [("sso:GetInlinePolicyForPermissionSet", PeopleRead)];
    ListManagedPoliciesInPermissionSet: SsoAdmin [("sso:ListManagedPoliciesInPermissionSet", PeopleRead)];
    ListCustomerManagedPolicyReferencesInPermissionSet: SsoAdmin [("sso:ListCustomerManagedPolicyReferencesInPermissionSet", PeopleRead)];
    GetUserId: IdentityStore [("identitystore:GetUserId", PeopleRead)];
    DescribeGroup: IdentityStore [("identitystore:DescribeGroup", PeopleRead)];
    DescribeUser: IdentityStore [("identitystore:DescribeUser", PeopleRead)];
    GetGroupId: IdentityStore [("identitystore:GetGroupId", PeopleRead)];
    DescribePermissionSetProvisioningStatus: SsoAdmin [("sso:DescribePermissionSetProvisioningStatus", PeopleRead)];
    DescribeAccountAssignmentCreationStatus: SsoAdmin [("sso:DescribeAccountAssignmentCreationStatus", PeopleRead)];
    DescribeAccountAssignmentDeletionStatus: SsoAdmin [("sso:DescribeAccountAssignmentDeletionStatus", PeopleRead)];
    GetPermissionsBoundaryForPermissionSet: SsoAdmin [("sso:GetPermissionsBoundaryForPermissionSet", PeopleRead)];
    PutPermissionsBoundaryToPermissionSet: SsoAdmin [("sso:PutPermissionsBoundaryToPermissionSet", PeopleOwnedSet)];
    DeletePermissionsBoundaryFromPermissionSet: SsoAdmin [("sso:DeletePermissionsBoundaryFromPermissionSet", PeopleOwnedSet)];
    CreateUser: IdentityStore [("identitystore:CreateUser", PeopleWrite)];
    CreateGroup: IdentityStore [("identitystore:CreateGroup", PeopleWrite)];
    CreateGroupMembership: IdentityStore [("identitystore:CreateGroupMembership", PeopleWrite)];
    DeleteGroupMembership: IdentityStore [("identitystore:DeleteGroupMembership", PeopleWrite)];
    UpdateGroup: IdentityStore [("identitystore:UpdateGroup", PeopleAdopt)];
    CreatePermissionSet: SsoAdmin [("sso:CreatePermissionSet", PeopleNewSet)];
    UpdatePermissionSet: SsoAdmin [("sso:UpdatePermissionSet", PeopleOwnedSet)];
    PutInlinePolicyToPermissionSet: SsoAdmin [("sso:PutInlinePolicyToPermissionSet", PeopleOwnedSet)];
    DeleteInlinePolicyFromPermissionSet: SsoAdmin [("sso:DeleteInlinePolicyFromPermissionSet", PeopleOwnedSet)];
    AttachManagedPolicyToPermissionSet: SsoAdmin [("sso:AttachManagedPolicyToPermissionSet", PeopleOwnedSet)];
    DetachManagedPolicyFromPermissionSet: SsoAdmin [("sso:DetachManagedPolicyFromPermissionSet", PeopleOwnedSet)];
    AttachCustomerManagedPolicyReferenceToPermissionSet: SsoAdmin [("sso:AttachCustomerManagedPolicyReferenceToPermissionSet", PeopleOwnedSet)];
    DetachCustomerManagedPolicyReferenceFromPermissionSet: SsoAdmin [("sso:DetachCustomerManagedPolicyReferenceFromPermissionSet", PeopleOwnedSet)];
    ProvisionPermissionSet: SsoAdmin [("sso:ProvisionPermissionSet", PeopleOwnedSet)];
    CreateAccountAssignment: SsoAdmin [("sso:CreateAccountAssignment", PeopleOwnedSet)];
    DeleteAccountAssignment: SsoAdmin [("sso:DeleteAccountAssignment", PeopleOwnedSet)];
    SsoTagResource = "TagResource": SsoAdmin [("sso:TagResource", PeopleOwnedSet), ("sso:TagResource", PeopleAdopt)];
    SsoListTagsForResource = "ListTagsForResource": SsoAdmin [("sso:ListTagsForResource", PeopleRead)];
}

/// A rate limit (`aws.maxRequestsPerSecond`): a service, or for Lambda the quota class
/// AWS counts a request in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RateClass {
    Iam,
    Sts,
    Tagging,
    Organizations,
    /// CloudWatch Logs: one write per pass, no limiter.
    Logs,
    /// Lambda `GetFunction` and `GetFunctionConfiguration`.
    LambdaGetFunction,
    /// Lambda `GetPolicy`.
    LambdaGetPolicy,
    /// Every other Lambda control-plane request.
    LambdaControlPlane,
    /// IAM Identity Center administration (`sso:`), one budget for all its APIs.
    IdentityCenter,
    /// The identity store, one budget per API.
    IdentityStore,
}

impl Operation {
    /// The rate limit that spaces it.
    pub fn rate_class(self) -> RateClass {
        match self.service() {
            Service::Iam => RateClass::Iam,
            Service::Sts => RateClass::Sts,
            Service::Tagging => RateClass::Tagging,
            Service::Organizations => RateClass::Organizations,
            Service::Logs => RateClass::Logs,
            Service::SsoAdmin => RateClass::IdentityCenter,
            Service::IdentityStore => RateClass::IdentityStore,
            Service::Lambda => match self {
                Operation::GetFunctionConfiguration => RateClass::LambdaGetFunction,
                Operation::GetPolicy => RateClass::LambdaGetPolicy,
                _ => RateClass::LambdaControlPlane,
            },
        }
    }
}
