//! Which Graph permissions each thing the tool does needs (least privileged first), as
//! documented for each API (NOTES.md §1.4, §3.1, §3.4, §5; `user-list-memberof` and
//! `user-list-approleassignments` for the memberships `verify` compares).

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
}

impl Capability {
    pub const ALL: [Self; 9] = [
        Self::ReadUsers,
        Self::ReadOrganization,
        Self::ReadDomains,
        Self::ReadFederation,
        Self::ReadGroupMembers,
        Self::InviteUsers,
        Self::UpdateUsers,
        Self::ReadMemberships,
        Self::ReadAppRoleAssignments,
    ];

    /// What the operator reads in `check`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ReadUsers => "read users (discover, plan, run)",
            Self::ReadOrganization => "read the organization (discover)",
            Self::ReadDomains => "read the tenant's domains (discover)",
            Self::ReadFederation => "read direct-federation domains (discover)",
            Self::ReadGroupMembers => "read group members (discover --group)",
            Self::InviteUsers => "invite users (run)",
            Self::UpdateUsers => "set `mail` before inviting (run)",
            Self::ReadMemberships => "read users' group memberships (verify, baselines)",
            Self::ReadAppRoleAssignments => "read users' app role assignments (verify, baselines)",
        }
    }

    /// Permissions that allow it, any one suffices; the first is the least privileged.
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

#[cfg(test)]
mod tests {
    use super::*;

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
