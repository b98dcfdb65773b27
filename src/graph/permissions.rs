//! Which Graph permissions each thing the tool does needs (least privileged first), as
//! documented for each API (NOTES.md §1.4, §3.1, §3.4, §5; `user-list-memberof` and
//! `user-list-approleassignments` for the memberships `verify` compares, `orgcontact-list` for
//! the org contacts whose addresses are taken, `crosstenantaccesspolicyconfigurationpartner-get`
//! and `…default-get` for the partner pre-flight, `directoryaudit-list` for the audit events
//! `verify` corroborates conversions with), and which of them the
//! configured workflow requires: the one definition `check` reports (text and `--json`) and
//! `docs/operations.md` describes.

/// Something the tool does against Graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    ReadUsers,
    ReadOrganization,
    ReadDomains,
    ReadFederation,
    ReadGroupMembers,
    InviteUsers,
    UpdateUsers,
    ReadMemberships,
    ReadAppRoleAssignments,
    ReadContacts,
    ReadCrossTenantAccess,
    ReadAuditLogs,
}

impl Capability {
    pub const ALL: [Self; 12] = [
        Self::ReadUsers,
        Self::ReadOrganization,
        Self::ReadDomains,
        Self::ReadFederation,
        Self::ReadGroupMembers,
        Self::InviteUsers,
        Self::UpdateUsers,
        Self::ReadMemberships,
        Self::ReadAppRoleAssignments,
        Self::ReadContacts,
        Self::ReadCrossTenantAccess,
        Self::ReadAuditLogs,
    ];

    /// What `run` does against Graph for each user: re-read them, set `mail` where the plan
    /// says so, read the baseline of memberships and app roles, invite.
    pub const USED_BY_RUN: [Self; 5] = [
        Self::ReadUsers,
        Self::UpdateUsers,
        Self::ReadMemberships,
        Self::ReadAppRoleAssignments,
        Self::InviteUsers,
    ];

    /// What the operator reads in `check`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ReadUsers => "read users (discover, plan, run)",
            Self::ReadOrganization => "read the organization (discover)",
            Self::ReadDomains => "read the tenant's domains (discover)",
            Self::ReadFederation => "read direct-federation domains (discover)",
            Self::ReadGroupMembers => {
                "read groups and their members (discover/plan --group, plan --exclude-group)"
            }
            Self::InviteUsers => "invite users (run)",
            Self::UpdateUsers => {
                "set `mail` before inviting (run), `userType` after redemption (set-user-type)"
            }
            Self::ReadMemberships => "read users' group memberships (verify, baselines)",
            Self::ReadAppRoleAssignments => "read users' app role assignments (verify, baselines)",
            Self::ReadContacts => {
                "read org contacts, whose addresses no user may take (discover; optional)"
            }
            Self::ReadCrossTenantAccess => {
                "read cross-tenant access settings: can redemption be automatic (plan; optional)"
            }
            Self::ReadAuditLogs => {
                "read the directory audit log to corroborate conversions (verify; optional)"
            }
        }
    }

    /// Whether the configured workflow (`discover`, `plan`, `run`, `verify`) needs it. The
    /// membership and app-role reads are required: `run` takes each user's baseline with them
    /// right before inviting and stops when it cannot (`verify` compares with it).
    pub fn required(self, workflow: &Workflow) -> bool {
        match self {
            // Only a group selection (`--group`, `--exclude-group`) reads groups and members.
            // Without the contacts `discover` skips them and plans warn that the addresses they
            // hold were not checked (`contacts-not-checked`).
            // Without the cross-tenant settings the partner pre-flight says "not checked";
            // without the audit log `verify` skips its corroboration and says so.
            Self::ReadGroupMembers
            | Self::ReadContacts
            | Self::ReadCrossTenantAccess
            | Self::ReadAuditLogs => false,
            Self::UpdateUsers => workflow.set_mail_before_invite,
            Self::ReadFederation => workflow.checks_direct_federation,
            Self::ReadUsers
            | Self::ReadOrganization
            | Self::ReadDomains
            | Self::InviteUsers
            | Self::ReadMemberships
            | Self::ReadAppRoleAssignments => true,
        }
    }

    /// Permissions that allow it for a token of this kind, any one suffices; the first is the
    /// least privileged. Delegated tokens differ where the documentation says so: another
    /// user's `memberOf` is open to `User.Read.All` there (`user-list-memberof`).
    pub fn permissions_for(self, delegated: bool) -> &'static [&'static str] {
        match self {
            Self::ReadMemberships if delegated => &[
                "User.Read.All",
                "GroupMember.Read.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            _ => self.permissions(),
        }
    }

    /// The granted permission that allows it to a token of this kind, if any
    /// (case-insensitive).
    pub fn granted_to(self, granted: &[String], delegated: bool) -> Option<&str> {
        self.permissions_for(delegated).iter().find_map(|needed| {
            granted
                .iter()
                .find(|g| g.eq_ignore_ascii_case(needed))
                .map(String::as_str)
        })
    }

    /// App-only permissions that allow it, any one suffices; the first is the least privileged.
    pub fn permissions(self) -> &'static [&'static str] {
        match self {
            Self::ReadUsers => &[
                "User.Read.All",
                "User.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            Self::ReadOrganization => &[
                "Organization.Read.All",
                "Organization.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            Self::ReadDomains => &[
                "Domain.Read.All",
                "Domain.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            Self::ReadFederation => &[
                "IdentityProvider.Read.All",
                "IdentityProvider.ReadWrite.All",
            ],
            Self::ReadGroupMembers => &[
                "GroupMember.Read.All",
                "Group.Read.All",
                "GroupMember.ReadWrite.All",
                "Group.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            Self::InviteUsers => &[
                "User.Invite.All",
                "User.ReadWrite.All",
                "Directory.ReadWrite.All",
            ],
            Self::UpdateUsers => &["User.ReadWrite.All", "Directory.ReadWrite.All"],
            // Another user's direct memberships, app-only. (Delegated tokens may use
            // User.Read.All too; the transitive variant lists User.Read.All for apps as well.)
            Self::ReadMemberships => &["Directory.Read.All", "Directory.ReadWrite.All"],
            Self::ReadAppRoleAssignments => {
                &["Directory.Read.All", "AppRoleAssignment.ReadWrite.All"]
            }
            // orgcontact-list, application and delegated.
            Self::ReadContacts => &[
                "OrgContact.Read.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            // crosstenantaccesspolicyconfigurationpartner-get and …default-get, application
            // and delegated; Directory.Read.All does not grant it.
            Self::ReadCrossTenantAccess => {
                &["Policy.Read.All", "Policy.ReadWrite.CrossTenantAccess"]
            }
            // directoryaudit-list: "AuditLog.Read.All and Directory.Read.All", application and
            // delegated; the directory read is already required (memberships).
            Self::ReadAuditLogs => &["AuditLog.Read.All"],
        }
    }

    /// The granted permission that allows it, if any (case-insensitive).
    pub fn granted_by(self, granted: &[String]) -> Option<&str> {
        self.permissions().iter().find_map(|needed| {
            granted
                .iter()
                .find(|g| g.eq_ignore_ascii_case(needed))
                .map(String::as_str)
        })
    }
}

/// What the configuration makes the workflow do, as far as permissions go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workflow {
    /// `invitation.set_mail_before_invite`: `run` may PATCH `mail`.
    pub set_mail_before_invite: bool,
    /// The `direct-federation` rule is not `off`: `discover` reads the federation domains.
    pub checks_direct_federation: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_WORKFLOW: Workflow = Workflow {
        set_mail_before_invite: true,
        checks_direct_federation: true,
    };

    #[test]
    fn the_device_code_default_scopes_cover_every_required_capability() {
        let scopes = crate::config::raw::RawAuth::default().delegated_scopes;
        for capability in Capability::ALL {
            if capability.required(&DEFAULT_WORKFLOW) {
                assert!(
                    capability.granted_to(&scopes, true).is_some(),
                    "{capability:?} is required but not among the default scopes {scopes:?}"
                );
            }
        }
    }

    #[test]
    fn what_is_required_follows_the_configured_workflow() {
        let lean = Workflow {
            set_mail_before_invite: false,
            checks_direct_federation: false,
        };
        let required = |workflow| {
            Capability::ALL
                .into_iter()
                .filter(|c| c.required(workflow))
                .collect::<Vec<_>>()
        };
        assert!(!required(&DEFAULT_WORKFLOW).contains(&Capability::ReadGroupMembers));
        assert!(!required(&DEFAULT_WORKFLOW).contains(&Capability::ReadContacts));
        assert!(!required(&DEFAULT_WORKFLOW).contains(&Capability::ReadCrossTenantAccess));
        assert!(!required(&DEFAULT_WORKFLOW).contains(&Capability::ReadAuditLogs));
        assert!(required(&DEFAULT_WORKFLOW).contains(&Capability::ReadMemberships));
        assert!(required(&DEFAULT_WORKFLOW).contains(&Capability::ReadAppRoleAssignments));
        assert!(!required(&lean).contains(&Capability::UpdateUsers));
        assert!(!required(&lean).contains(&Capability::ReadFederation));
    }

    #[test]
    fn a_delegated_token_reads_memberships_with_user_read_all() {
        let granted = vec!["User.Read.All".to_owned()];
        assert!(
            Capability::ReadMemberships
                .granted_to(&granted, true)
                .is_some()
        );
        assert!(
            Capability::ReadMemberships
                .granted_to(&granted, false)
                .is_none()
        );
        assert!(
            Capability::ReadAppRoleAssignments
                .granted_to(&granted, true)
                .is_none()
        );
    }

    #[test]
    fn a_higher_permission_satisfies_a_lower_need() {
        let granted = vec!["directory.readwrite.all".to_owned()];
        assert_eq!(
            Capability::ReadUsers.granted_by(&granted),
            Some("directory.readwrite.all")
        );
        assert_eq!(Capability::ReadFederation.granted_by(&granted), None);
        let invite_only = vec!["User.Invite.All".to_owned()];
        assert!(Capability::InviteUsers.granted_by(&invite_only).is_some());
        assert!(Capability::UpdateUsers.granted_by(&invite_only).is_none());
    }
}
