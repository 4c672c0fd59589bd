"""moto's server, with the IAM Identity Center and identity store calls moto 5.2.5 lacks
answered as AWS documents them. The tests and `make demo` start moto through this file
(same arguments as `moto_server`); everything else is moto's own.

Added, from the IAM Identity Center API reference:
- PutPermissionsBoundaryToPermissionSet: attaches the boundary (a managed policy ARN or a
  customer-managed policy reference) to the permission set; answers `{}`.
- GetPermissionsBoundaryForPermissionSet: `{"PermissionsBoundary": {...}}`; a permission
  set without one answers ResourceNotFoundException (the reference lists it among the
  operation's errors; that it is the answer for "none attached" is inferred).
- DeletePermissionsBoundaryFromPermissionSet: takes it off; ResourceNotFoundException when
  there is none.
- TagResource: `{InstanceArn?, ResourceArn, Tags: [{Key, Value}]}` adds the tags to the
  permission set (a key already there takes the new value); answers `{}`. The reference
  allows 0 to 75 tags in a request; more is ValidationException.
- UntagResource: `{InstanceArn?, ResourceArn, TagKeys: [...]}` takes those keys off (a key
  not there is no error); answers `{}`.
- ListTagsForResource: `{InstanceArn?, ResourceArn, NextToken?}` answers `{"Tags": [...]}`,
  one page (a set holds at most 50 tags: `NextToken` is never needed here).
- CreatePermissionSet's `Tags`: moto stores them already; TagResource and the listing read
  the same list. Tags only on permission sets here (the reference allows instances,
  applications and trusted token issuers too; trustsync tags none of them).
InstanceArn is optional in the three tag calls (the reference says "Required: No"): the set
is found by its ARN alone then. An unknown permission set is ResourceNotFoundException, as
moto answers for its own calls.

Added, from the Identity Store API reference ("UpdateGroup", and the "Group" and
"AttributeOperation" data types):
- UpdateGroup: `{IdentityStoreId, GroupId, Operations: [{AttributePath, AttributeValue}]}`,
  1 to 100 operations (else ValidationException); each replaces the group's attribute the
  path names (`description` or `displayName`: the Group type's attributes; an
  AttributeValue left out removes a description); answers an empty body (`{}`). An
  unknown group is ResourceNotFoundException; a display name another group of the store
  holds is ConflictException (the reference: "would violate an existing uniqueness
  claim"). Inferred, not stated by the reference: that the path is matched without case
  (AWS's own examples write `description`, SDK users `Description` too), and that
  `externalIds` and other paths are refused here (moto keeps no other group attribute).

Changed for the test server's cost, not for what AWS answers:
- ListUsers without Filters builds only the page it answers. moto's own turns every user of
  the store into a dictionary for every page and then looks for the token's user among them,
  so that a store of 10,000 users took about 240 ms a page and held every other request of the
  server meanwhile (the quotas benchmark's onboarding measured that wait, not trustsync). Same
  users, same order (the store's insertion order, as moto's), same page size (MaxResults,
  default 100), an opaque NextToken naming the page's first user; a token whose user is gone
  is moto's InvalidToken, as before. With Filters, moto's own answers.

Also: each server records to its own file (`MOTO_RECORDER_FILEPATH` per process, unless
set), so that a test may start moto's request recorder (`/moto-api/recorder/...`) without
two servers writing one file.
"""

import base64
import json
import os
import tempfile

os.environ.setdefault(
    "MOTO_RECORDER_FILEPATH",
    os.path.join(tempfile.gettempdir(), "trustsync-moto-recording-{}.jsonl".format(os.getpid())),
)

from moto.core.exceptions import InvalidToken, JsonRESTError  # noqa: E402
from moto.identitystore import exceptions as store_errors  # noqa: E402
from moto.identitystore.models import IdentityStoreBackend  # noqa: E402
from moto.identitystore.responses import IdentityStoreResponse  # noqa: E402
from moto.server import main  # noqa: E402
from moto.ssoadmin.exceptions import ResourceNotFoundException  # noqa: E402
from moto.ssoadmin.responses import SSOAdminResponse  # noqa: E402

MAX_TAGS_PER_REQUEST = 75


def _permission_set(self):
    backend = self.ssoadmin_backend
    return backend._find_permission_set(self._get_param("InstanceArn"), self._get_param("PermissionSetArn"))


def put_permissions_boundary_to_permission_set(self):
    _permission_set(self).permissions_boundary = self._get_param("PermissionsBoundary")
    return json.dumps({})


def get_permissions_boundary_for_permission_set(self):
    boundary = getattr(_permission_set(self), "permissions_boundary", None)
    if not boundary:
        raise ResourceNotFoundException(message="The permission set has no permissions boundary")
    return json.dumps({"PermissionsBoundary": boundary})


def delete_permissions_boundary_from_permission_set(self):
    ps = _permission_set(self)
    if not getattr(ps, "permissions_boundary", None):
        raise ResourceNotFoundException(message="The permission set has no permissions boundary")
    ps.permissions_boundary = None
    return json.dumps({})


def _tagged(self):
    """The permission set a tag call names by ResourceArn (within InstanceArn when given)."""
    arn = self._get_param("ResourceArn")
    instance = self._get_param("InstanceArn")
    for ps in self.ssoadmin_backend.permission_sets:
        if ps.permission_set_arn == arn and (not instance or ps.instance_arn == instance):
            return ps
    raise ResourceNotFoundException(message="Could not find PermissionSet with id {}".format((arn or "").split("/")[-1]))


def tag_resource(self):
    tags = self._get_param("Tags") or []
    if len(tags) > MAX_TAGS_PER_REQUEST:
        raise JsonRESTError("ValidationException", "at most {} tags in one request".format(MAX_TAGS_PER_REQUEST))
    ps = _tagged(self)
    held = {t["Key"]: t["Value"] for t in (ps.tags or [])}
    held.update({t["Key"]: t["Value"] for t in tags})
    ps.tags = [{"Key": k, "Value": v} for k, v in held.items()]
    return json.dumps({})


def untag_resource(self):
    keys = set(self._get_param("TagKeys") or [])
    ps = _tagged(self)
    ps.tags = [t for t in (ps.tags or []) if t["Key"] not in keys]
    return json.dumps({})


def list_tags_for_resource(self):
    return json.dumps({"Tags": list(_tagged(self).tags or [])})


MAX_GROUP_OPERATIONS = 100
GROUP_ATTRIBUTES = {"description": "Description", "displayname": "DisplayName"}


def update_group(self):
    backend = self.identitystore_backend
    store = backend._IdentityStoreBackend__get_identity_store(self._get_param("IdentityStoreId"))
    group_id = self._get_param("GroupId")
    operations = self._get_param("Operations") or []
    if not 1 <= len(operations) <= MAX_GROUP_OPERATIONS:
        raise store_errors.ValidationException(message="Operations holds 1 to {} items".format(MAX_GROUP_OPERATIONS))
    group = store.groups.get(group_id)
    if group is None:
        raise store_errors.ResourceNotFoundException(message="GROUP not found.", resource_type="GROUP")
    changes = {}
    for op in operations:
        field = GROUP_ATTRIBUTES.get((op.get("AttributePath") or "").lower())
        if field is None:
            raise store_errors.ValidationException(message="unknown AttributePath {!r}".format(op.get("AttributePath")))
        value = op.get("AttributeValue")
        if field == "DisplayName":
            if not value:
                raise store_errors.ValidationException(message="displayName cannot be removed")
            if any(g.DisplayName == value and g.GroupId != group_id for g in store.groups.values()):
                raise store_errors.ConflictException(message="Duplicate GroupDisplayName", reason="UNIQUENESS_CONSTRAINT_VIOLATION")
        changes[field] = value
    store.groups[group_id] = group._replace(**changes)
    return json.dumps({})


USERS_PAGE_DEFAULT = 100
_moto_list_users = IdentityStoreBackend.list_users


def _user_answer(user):
    answer = user._asdict()
    if answer.get("Name"):
        answer["Name"] = user.Name._asdict()
    return answer


def list_users(self, identity_store_id, filters=None, max_results=None, next_token=None):
    if filters:
        return _moto_list_users(
            self, identity_store_id=identity_store_id, filters=filters, max_results=max_results, next_token=next_token
        )
    store = self._IdentityStoreBackend__get_identity_store(identity_store_id)
    ids = list(store.users)
    start = 0
    if next_token:
        try:
            start = ids.index(base64.urlsafe_b64decode(next_token.encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise InvalidToken("Invalid token")
    end = start + (max_results or USERS_PAGE_DEFAULT)
    page = [_user_answer(store.users[user_id]) for user_id in ids[start:end]]
    following = base64.urlsafe_b64encode(ids[end].encode()).decode() if end < len(ids) else None
    return page, following


IdentityStoreBackend.list_users = list_users
IdentityStoreResponse.update_group = update_group
SSOAdminResponse.tag_resource = tag_resource
SSOAdminResponse.untag_resource = untag_resource
SSOAdminResponse.list_tags_for_resource = list_tags_for_resource
SSOAdminResponse.put_permissions_boundary_to_permission_set = put_permissions_boundary_to_permission_set
SSOAdminResponse.get_permissions_boundary_for_permission_set = get_permissions_boundary_for_permission_set
SSOAdminResponse.delete_permissions_boundary_from_permission_set = delete_permissions_boundary_from_permission_set

if __name__ == "__main__":
    main()
