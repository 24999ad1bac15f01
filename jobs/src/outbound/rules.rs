//! The gate a call passes at the moment of dialling, from what is stored: the
//! calling policy for its purpose (`calling_policies`: a `default` row and the
//! purposes that differ, read and replaced as a [`PolicySet`]; built-in
//! defaults without rows), the contact's own zone and NCPR/DND flag, and our
//! opt-out list.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::window::{self, CallingPolicy, PolicyError, Purpose};

/// The key of the policy every purpose without its own row follows.
pub const DEFAULT_POLICY: &str = "default";

/// Everything that decides whether and when one number may be called for one purpose.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub purpose: Purpose,
    pub policy: CallingPolicy,
    pub zone: Tz,
    pub opted_out: bool,
    pub ncpr_registered: bool,
}

/// What the gate says at a given instant.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Open,
    /// Closed now; opens again at the instant (`None`: never within the search horizon).
    ClosedUntil(Option<DateTime<Utc>>),
    /// This number may never get this purpose's calls.
    Blocked(&'static str),
}

impl Rules {
    pub async fn load(conn: &mut PgConnection, phone: &str, purpose: Purpose) -> Result<Self, sqlx::Error> {
        let policy = policy_for(&mut *conn, purpose).await?;
        let (contact_zone, ncpr_registered, opted_out): (Option<String>, Option<bool>, bool) = sqlx::query_as(
            "SELECT c.timezone, c.ncpr_registered, EXISTS (SELECT 1 FROM opt_outs WHERE phone = $1)
             FROM (SELECT $1::text AS phone) AS p LEFT JOIN contacts c USING (phone)",
        )
        .bind(phone)
        .fetch_one(conn)
        .await?;
        let contact_zone = contact_zone.and_then(|name| name.parse::<Tz>().ok());
        Ok(Self {
            purpose,
            zone: policy.zone_for(contact_zone),
            policy,
            opted_out,
            ncpr_registered: ncpr_registered.unwrap_or(false),
        })
    }

    /// Opt-outs stop promotional and service calls; the NCPR registry stops promotional ones.
    pub fn blocked_reason(&self) -> Option<&'static str> {
        match self.purpose {
            Purpose::Transactional => None,
            Purpose::Service | Purpose::Promotional if self.opted_out => Some("the number opted out"),
            Purpose::Promotional if self.ncpr_registered => Some("the number is on the NCPR/DND registry"),
            Purpose::Service | Purpose::Promotional => None,
        }
    }

    pub fn next_opening(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        window::next_opening(&self.policy, self.purpose, self.zone, after)
    }

    pub fn verdict(&self, at: DateTime<Utc>) -> Verdict {
        if let Some(reason) = self.blocked_reason() {
            Verdict::Blocked(reason)
        } else if window::is_open(&self.policy, self.purpose, self.zone, at) {
            Verdict::Open
        } else {
            Verdict::ClosedUntil(self.next_opening(at))
        }
    }
}

/// The policy a purpose follows: its own row, else the default row, else built-in defaults.
pub async fn policy_for(conn: &mut PgConnection, purpose: Purpose) -> Result<CallingPolicy, sqlx::Error> {
    let stored: Option<Json<CallingPolicy>> = sqlx::query_scalar(
        "SELECT policy FROM calling_policies WHERE purpose IN ($1, $2) ORDER BY purpose = $2 LIMIT 1",
    )
    .bind(purpose.as_str())
    .bind(DEFAULT_POLICY)
    .fetch_optional(conn)
    .await?;
    Ok(stored.map_or_else(CallingPolicy::default, |json| json.0))
}

/// Every stored policy: the default and the purposes that differ from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySet {
    pub default: CallingPolicy,
    pub overrides: BTreeMap<Purpose, CallingPolicy>,
}

impl PolicySet {
    pub async fn load(conn: &mut PgConnection) -> Result<Self, sqlx::Error> {
        let rows: Vec<(String, Json<CallingPolicy>)> =
            sqlx::query_as("SELECT purpose, policy FROM calling_policies").fetch_all(conn).await?;
        let mut set = Self::default();
        for (key, Json(policy)) in rows {
            match Purpose::ALL.into_iter().find(|p| p.as_str() == key) {
                Some(purpose) => {
                    set.overrides.insert(purpose, policy);
                }
                None => set.default = policy,
            }
        }
        Ok(set)
    }

    /// Refuses the set when a policy is malformed or leaves a purpose no time
    /// to call; the error names the field (`overrides.promotional.business_hours`).
    pub fn validate(&self) -> Result<(), PolicyError> {
        let follow_default: Vec<Purpose> =
            Purpose::ALL.into_iter().filter(|p| !self.overrides.contains_key(p)).collect();
        self.default
            .validate(&follow_default)
            .map_err(|e| PolicyError { field: format!("default.{}", e.field), ..e })?;
        for (purpose, policy) in &self.overrides {
            policy
                .validate(&[*purpose])
                .map_err(|e| PolicyError { field: format!("overrides.{purpose}.{}", e.field), ..e })?;
        }
        Ok(())
    }

    /// Replaces every stored policy with this set; run it in a transaction.
    /// The caller validates the set first.
    pub async fn save(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM calling_policies").execute(&mut *conn).await?;
        let keys = std::iter::once(DEFAULT_POLICY).chain(self.overrides.keys().map(|p| p.as_str()));
        let policies = std::iter::once(&self.default).chain(self.overrides.values());
        for (key, policy) in keys.zip(policies) {
            sqlx::query("INSERT INTO calling_policies (purpose, policy) VALUES ($1, $2)")
                .bind(key)
                .bind(Json(policy))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}
