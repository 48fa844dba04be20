//! The desired history's vocabulary: what a desired change was, and who
//! made it (the admin, a tenant API key, or a rollout).

use std::fmt;

use uuid::Uuid;

use crate::text_enum::text_enum;

text_enum!(
    /// What a desired change was (`desired_history.change`).
    Change {
        /// The device was registered (with its first document, or none).
        Register = "register",
        /// An RFC 7396 merge patch.
        Merge = "merge",
        /// A whole new document.
        Replace = "replace",
        /// A rollout's merge patch.
        Rollout = "rollout",
        /// A rollout's rollback: the document the device had before it.
        Rollback = "rollback",
        /// The device was decommissioned (its retained message cleared).
        Decommission = "decommission",
    }
);

/// The author of a desired change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The holder of the admin token.
    Admin,
    /// A tenant API key, by its (public) id.
    Key(Uuid),
    /// A rollout, by its id.
    Rollout(i64),
}

/// `admin`, `key:<id>` or `rollout:<id>`: the form stored and shown.
impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admin => f.write_str("admin"),
            Self::Key(id) => write!(f, "key:{id}"),
            Self::Rollout(id) => write!(f, "rollout:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_print_as_the_contract_names_them() {
        let id = Uuid::nil();
        assert_eq!(Actor::Admin.to_string(), "admin");
        assert_eq!(
            Actor::Key(id).to_string(),
            "key:00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(Actor::Rollout(7).to_string(), "rollout:7");
    }
}
