//! The JSON report: the whole [`ReportData`], pretty-printed, for scripts and other tools.
//!
//! Owns nothing but the serialisation call: the schema *is* [`ReportData`], documented field
//! by field in `docs/reports.md` (a test keeps the two in step) and versioned by
//! [`super::SCHEMA_VERSION`].

use super::ReportData;

/// Renders the JSON report, ending with a new line.
pub fn render_json(data: &ReportData) -> String {
    let mut text = serde_json::to_string_pretty(data)
        .expect("ReportData serialises: string keys, no floats, no fallible Serialize impls");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::domain::{Decision, PreflightReason, RealmKind, Redemption, UserState};
    use crate::report::testdata;
    use crate::rules::{AddressOrigin, Reason, Severity};

    const DOC: &str = include_str!("../../docs/reports.md");

    #[test]
    fn round_trips_as_json_with_the_schema_version() {
        let data = testdata::sample();
        let value: Value = serde_json::from_str(&render_json(&data)).unwrap();
        assert_eq!(value["schema_version"], 1);
        assert_eq!(value["generated_at"], "2026-11-21T09:30:00Z");
        assert_eq!(value["members"].as_array().unwrap().len(), 6);
        let bob = &value["members"][1];
        assert_eq!(bob["decision"], "eligible");
        assert_eq!(bob["state"], "ready");
        assert_eq!(bob["address_origin"], "other-mails");
        assert_eq!(bob["realm"], "managed");
        assert_eq!(bob["findings"][0]["reason"], "disabled-account");
        assert_eq!(bob["findings"][0]["severity"], "warning");
        assert_eq!(bob["invited_at"], Value::Null);
    }

    /// Every key the JSON report can contain (with every optional value set), by object.
    fn keys_by_object() -> Vec<(&'static str, Vec<String>)> {
        let mut data = testdata::synthetic(20, true);
        let member = &mut data.members[0];
        member.address_origin = Some(AddressOrigin::Override);
        member.invited_at = Some(data.generated_at);
        member.accepted_at = Some(data.generated_at);
        member.last_error = Some("x".to_owned());
        member
            .findings
            .push(testdata::finding(Reason::NoAddress, Severity::Info, "x"));
        let value = serde_json::to_value(&data).unwrap();
        let keys = |object: &Value| -> Vec<String> {
            object
                .as_object()
                .expect("an object")
                .keys()
                .cloned()
                .collect()
        };
        vec![
            ("top level", keys(&value)),
            ("tenant", keys(&value["tenant"])),
            ("wave", keys(&value["wave"])),
            ("members[]", keys(&value["members"][0])),
            ("findings[]", keys(&value["members"][0]["findings"][0])),
            ("partner_preflight[]", keys(&value["partner_preflight"][0])),
        ]
    }

    #[test]
    fn every_field_is_documented() {
        for (object, keys) in keys_by_object() {
            for key in keys {
                assert!(
                    DOC.contains(&format!("| `{key}` |")),
                    "docs/reports.md does not document `{key}` ({object})"
                );
            }
        }
    }

    #[test]
    fn every_enum_value_is_documented() {
        let mut codes: Vec<String> = Vec::new();
        codes.extend(Decision::ALL.iter().map(|d| d.code().to_owned()));
        codes.extend(UserState::ALL.iter().map(|s| s.code().to_owned()));
        codes.extend(Reason::ALL.iter().map(|r| r.code().to_owned()));
        codes.extend(Redemption::ALL.iter().map(|r| r.code().to_owned()));
        codes.extend(PreflightReason::ALL.iter().map(|r| r.code().to_owned()));
        for value in [
            serde_json::to_value(RealmKind::Managed),
            serde_json::to_value(RealmKind::Federated),
            serde_json::to_value(RealmKind::Unknown),
            serde_json::to_value(AddressOrigin::Mail),
            serde_json::to_value(AddressOrigin::OtherMails),
            serde_json::to_value(AddressOrigin::Override),
            serde_json::to_value(Severity::Blocker),
            serde_json::to_value(Severity::Warning),
            serde_json::to_value(Severity::Info),
        ] {
            codes.push(value.unwrap().as_str().unwrap().to_owned());
        }
        for code in codes {
            assert!(
                DOC.contains(&format!("`{code}`")),
                "docs/reports.md does not mention `{code}`"
            );
        }
    }

    #[test]
    fn the_documented_schema_version_is_the_current_one() {
        assert!(DOC.contains(&format!(
            "Schema version: **{}**",
            crate::report::SCHEMA_VERSION
        )));
    }
}
