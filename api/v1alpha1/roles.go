package v1alpha1

import "github.com/tenantauth/tenantauth/api/consts"

// Built-in role names, highest first (see package consts).
const (
	RoleOwner   = consts.RoleOwner
	RoleAdmin   = consts.RoleAdmin
	RoleManager = consts.RoleManager
	RoleMember  = consts.RoleMember
	RoleViewer  = consts.RoleViewer
)

// Permissions granted by the built-in roles. They follow the seed APIs:
// objects are the organization's application objects (skills, captures,
// deals, ...), recorded by members and managed by managers.
const (
	PermOrgRead       = "org:read"
	PermOrgUpdate     = "org:update"
	PermOrgDelete     = "org:delete"
	PermOwnershipMove = "org:transfer"
	PermMembersRead   = "members:read"
	PermMembersManage = "members:manage"
	PermAPIKeysRead   = "apikeys:read"
	PermAPIKeysManage = "apikeys:manage"
	PermObjectsRead   = "objects:read"
	PermObjectsRecord = "objects:record"
	PermObjectsWrite  = "objects:write"
	PermObjectsDelete = "objects:delete"
)

// builtinRoles is the contract's built-in role table (owner, admin,
// manager, member, viewer with their ranks and permissions), highest rank
// first.
var builtinRoles = []Role{
	{Name: RoleOwner, Rank: 100, Permissions: []string{
		PermOrgRead, PermOrgUpdate, PermOrgDelete, PermOwnershipMove,
		PermMembersRead, PermMembersManage, PermAPIKeysRead, PermAPIKeysManage,
		PermObjectsRead, PermObjectsRecord, PermObjectsWrite, PermObjectsDelete}},
	{Name: RoleAdmin, Rank: 80, Permissions: []string{
		PermOrgRead, PermOrgUpdate,
		PermMembersRead, PermMembersManage, PermAPIKeysRead, PermAPIKeysManage,
		PermObjectsRead, PermObjectsRecord, PermObjectsWrite, PermObjectsDelete}},
	{Name: RoleManager, Rank: 60, Permissions: []string{
		PermOrgRead, PermMembersRead, PermAPIKeysRead, PermAPIKeysManage,
		PermObjectsRead, PermObjectsRecord, PermObjectsWrite}},
	{Name: RoleMember, Rank: 40, Permissions: []string{
		PermOrgRead, PermMembersRead, PermObjectsRead, PermObjectsRecord}},
	{Name: RoleViewer, Rank: 20, Permissions: []string{
		PermOrgRead, PermObjectsRead}},
}

// BuiltinRoles returns a copy of the built-in role table, highest first.
func BuiltinRoles() []Role {
	out := make([]Role, len(builtinRoles))
	for i, r := range builtinRoles {
		out[i] = Role{Name: r.Name, Rank: r.Rank, Permissions: append([]string(nil), r.Permissions...)}
	}
	return out
}

// LookupRole finds a role by name among the organization's custom roles
// and then the built-ins. Custom roles may not shadow built-in names (the
// CRD schema rejects that), so the order only matters for speed.
func (o *Organization) LookupRole(name string) (Role, bool) {
	for _, r := range o.Spec.Roles {
		if r.Name == name {
			return r, true
		}
	}
	for _, r := range builtinRoles {
		if r.Name == name {
			return r, true
		}
	}
	return Role{}, false
}

// ScopeRank orders API-key scopes: read < write < delete < admin.
func ScopeRank(s APIKeyScope) int {
	switch s {
	case ScopeRead:
		return 1
	case ScopeWrite:
		return 2
	case ScopeDelete:
		return 3
	case ScopeAdmin:
		return 4
	}
	return 0
}
