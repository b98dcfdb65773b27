//! `PATCH /users/{id}` as the directory applies it: read-only and sync-mastered properties,
//! the mailbox rule for `mail`, proxy-address collisions (with users and org contacts), type checks, and the proxy-address
//! update that follows a new `mail`. It must not know HTTP.

use serde_json::{Map, Value};

use super::{Directory, DirectoryError, has_mailbox_plan, messages, validate_address};
use crate::clock::SimClock;

impl Directory {
    /// `PATCH /users/{id}` with Graph's update rules for the properties the simulator models.
    #[allow(clippy::too_many_lines)] // one linear sequence of checks in the order the service makes them
    pub fn patch(
        &self,
        index: u64,
        body: &Map<String, Value>,
        clock: &SimClock,
    ) -> Result<(), DirectoryError> {
        const READ_ONLY: &[&str] = &[
            "id",
            "externalUserState",
            "externalUserStateChangeDateTime",
            "creationType",
            "onPremisesSyncEnabled",
            "onPremisesImmutableId",
            "onPremisesSamAccountName",
            "onPremisesDistinguishedName",
            "onPremisesDomainName",
            "onPremisesUserPrincipalName",
            "proxyAddresses",
            "assignedPlans",
            "provisionedPlans",
            "assignedLicenses",
        ];
        const SYNC_MASTERED: &[&str] = &[
            "mail",
            "displayName",
            "givenName",
            "surname",
            "accountEnabled",
            "userPrincipalName",
            "jobTitle",
        ];
        let now = clock.now_ms();
        let mut state = self.lock();
        let mut user = self
            .user_locked(&mut state, index, now)
            .ok_or_else(|| DirectoryError::NotFound(index.to_string()))?;
        for key in body.keys() {
            if READ_ONLY.contains(&key.as_str()) {
                return Err(DirectoryError::request(format!(
                    "Property '{key}' is read-only and cannot be set."
                )));
            }
            if !crate::model::USER_PROPERTIES.contains(&key.as_str()) {
                return Err(DirectoryError::bad(format!(
                    "Property '{key}' does not exist as a declared property or extension property."
                )));
            }
            if user.on_premises_sync_enabled == Some(true) && SYNC_MASTERED.contains(&key.as_str())
            {
                return Err(DirectoryError::request(messages::SYNCED_PROPERTIES));
            }
        }
        let invalid = |key: &str| {
            DirectoryError::request(format!(
                "Invalid value specified for property '{key}' of resource 'User'."
            ))
        };
        let string_or_null = |key: &str| -> Result<Option<String>, DirectoryError> {
            match &body[key] {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.clone())),
                _ => Err(invalid(key)),
            }
        };
        for key in body.keys() {
            match key.as_str() {
                "mail" => {
                    let new_mail = string_or_null("mail")?;
                    if let Some(mail) = &new_mail {
                        let domain = validate_address(mail).map_err(|_| invalid("mail"))?;
                        if has_mailbox_plan(&user)
                            && self.rules.mailbox_blocks_mail_update
                            && self.facts.verified_domain_of(&domain).is_none()
                        {
                            return Err(DirectoryError::request(messages::MAILBOX_PROPERTIES));
                        }
                        // Another user's or an org contact's address (NOTES §1.6).
                        if self
                            .proxy_holder(&mut state, mail, Some(index), now)
                            .is_some()
                            || self.contact_holding(mail).is_some()
                        {
                            return Err(DirectoryError::request(messages::PROXY_COLLISION));
                        }
                        for proxy in &mut user.proxy_addresses {
                            if let Some(rest) = proxy.strip_prefix("SMTP:") {
                                *proxy = format!("smtp:{rest}");
                            }
                        }
                        user.proxy_addresses.retain(|p| {
                            !p.split_once(':')
                                .is_some_and(|(_, a)| a.eq_ignore_ascii_case(mail))
                        });
                        user.proxy_addresses.insert(0, format!("SMTP:{mail}"));
                        state
                            .extra_addresses
                            .entry(mail.to_lowercase())
                            .or_default()
                            .insert(index);
                    }
                    user.mail = new_mail;
                }
                "otherMails" => {
                    let Value::Array(items) = &body[key] else {
                        return Err(invalid(key));
                    };
                    let mut mails = Vec::new();
                    for item in items {
                        let Value::String(s) = item else {
                            return Err(invalid(key));
                        };
                        state
                            .extra_addresses
                            .entry(s.to_lowercase())
                            .or_default()
                            .insert(index);
                        mails.push(s.clone());
                    }
                    user.other_mails = mails;
                }
                "accountEnabled" => {
                    user.account_enabled = Some(body[key].as_bool().ok_or_else(|| invalid(key))?);
                }
                "displayName" => user.display_name = string_or_null(key)?,
                "givenName" => user.given_name = string_or_null(key)?,
                "surname" => user.surname = string_or_null(key)?,
                "jobTitle" => user.job_title = string_or_null(key)?,
                "userType" => match string_or_null(key)?.as_deref() {
                    Some(t @ ("Member" | "Guest")) => user.user_type = Some(t.to_owned()),
                    _ => return Err(invalid(key)),
                },
                other => {
                    return Err(DirectoryError::request(format!(
                        "Updating property '{other}' is not supported by the simulator."
                    )));
                }
            }
        }
        self.store_locked(&mut state, index, user);
        Ok(())
    }
}
