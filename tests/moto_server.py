"""moto's server, with the IAM Identity Center calls moto 5.2.5 lacks answered as AWS
documents them. The tests and `make demo` start moto through this file (same arguments as
`moto_server`); everything else is moto's own.

Added, from the IAM Identity Center API reference:
- PutPermissionsBoundaryToPermissionSet: attaches the boundary (a managed policy ARN or a
  customer-managed policy reference) to the permission set; answers `{}`.
- GetPermissionsBoundaryForPermissionSet: `{"PermissionsBoundary": {...}}`; a permission
  set without one answers ResourceNotFoundException (the reference lists it among the
  operation's errors; that it is the answer for "none attached" is inferred).
- DeletePermissionsBoundaryFromPermissionSet: takes it off; ResourceNotFoundException when
  there is none.
An unknown permission set is ResourceNotFoundException, as moto answers for its own calls.
"""

import json

from moto.server import main
from moto.ssoadmin.exceptions import ResourceNotFoundException
from moto.ssoadmin.responses import SSOAdminResponse


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


SSOAdminResponse.put_permissions_boundary_to_permission_set = put_permissions_boundary_to_permission_set
SSOAdminResponse.get_permissions_boundary_for_permission_set = get_permissions_boundary_for_permission_set
SSOAdminResponse.delete_permissions_boundary_from_permission_set = delete_permissions_boundary_from_permission_set

if __name__ == "__main__":
    main()
