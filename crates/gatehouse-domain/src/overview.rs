//! The admin overview: what the dashboard's first page and `GET /v1/admin/stats` show — sign-ins,
//! failed sign-ins and sign-ups per day (UTC) over the last days, counted from the audit trail,
//! plus the active sessions and the accounts right now.
//!
//! Rules: a day is a UTC calendar day; every day of the window is answered, with zeros where
//! nothing happened, oldest first, today last. A sign-in is a `session.created` event (password,
//! passkey, magic link, provider: every way that opens a session), a failed one a
//! `user.sign_in_failed`, a sign-up a `user.created`. Counts follow the audit retention: a
//! window longer than it shows zeros for the days already removed.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::clock::Clock;
use crate::error::DomainError;
use crate::principal::AdminPrincipal;
use crate::store::StoreError;

/// The audit actions counted, in the order of [`DayCounts`]' fields.
pub const SIGN_IN_ACTION: &str = "session.created";
pub const FAILED_SIGN_IN_ACTION: &str = "user.sign_in_failed";
pub const SIGN_UP_ACTION: &str = "user.created";
/// The longest window asked for.
pub const MAX_DAYS: u32 = 90;
const DAY: i64 = 86_400;

/// One UTC day's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayCounts {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub sign_ins: i64,
    pub failed_sign_ins: i64,
    pub sign_ups: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overview {
    /// Oldest first; the last is today (so far).
    pub days: Vec<DayCounts>,
    /// Sessions neither ended nor expired.
    pub active_sessions: i64,
    /// Accounts, suspended ones included.
    pub users: i64,
}

/// One (action, day) count: `day` is the Unix day number (seconds / 86 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionDayCount {
    pub action: String,
    pub day: i64,
    pub count: i64,
}

#[async_trait]
pub trait OverviewStore: Send + Sync {
    /// Audit events of `actions` at or after `since`, counted per action and UTC day.
    async fn action_counts_by_day(
        &self,
        actions: &[&str],
        since: i64,
    ) -> Result<Vec<ActionDayCount>, StoreError>;
    /// Sessions not revoked and not expired at `now`.
    async fn count_active_sessions(&self, now: i64) -> Result<i64, StoreError>;
    async fn count_users(&self) -> Result<i64, StoreError>;
}

pub struct AdminOverview {
    store: Arc<dyn OverviewStore>,
    clock: Arc<dyn Clock>,
}

/// `YYYY-MM-DD` of a Unix day number.
pub fn day_date(day: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(day.saturating_mul(DAY))
        .map(|at| at.date().to_string())
        .unwrap_or_default()
}

impl AdminOverview {
    pub fn new(store: Arc<dyn OverviewStore>, clock: Arc<dyn Clock>) -> AdminOverview {
        AdminOverview { store, clock }
    }

    /// The last `days` UTC days (1 to [`MAX_DAYS`]), today included.
    pub async fn overview(
        &self,
        _admin: &AdminPrincipal,
        days: u32,
    ) -> Result<Overview, DomainError> {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(DomainError::Validation(vec![crate::error::FieldIssue::new(
                "days",
                "out_of_range",
                format!("1 to {MAX_DAYS}"),
            )]));
        }
        let now = self.clock.now();
        let today = now.div_euclid(DAY);
        let first = today - i64::from(days) + 1;
        let mut window: Vec<DayCounts> = (first..=today)
            .map(|day| DayCounts { date: day_date(day), ..DayCounts::default() })
            .collect();
        let counts = self
            .store
            .action_counts_by_day(
                &[SIGN_IN_ACTION, FAILED_SIGN_IN_ACTION, SIGN_UP_ACTION],
                first * DAY,
            )
            .await?;
        for count in counts {
            let Some(slot) =
                usize::try_from(count.day - first).ok().and_then(|i| window.get_mut(i))
            else {
                continue;
            };
            match count.action.as_str() {
                SIGN_IN_ACTION => slot.sign_ins += count.count,
                FAILED_SIGN_IN_ACTION => slot.failed_sign_ins += count.count,
                SIGN_UP_ACTION => slot.sign_ups += count.count,
                _ => {}
            }
        }
        Ok(Overview {
            days: window,
            active_sessions: self.store.count_active_sessions(now).await?,
            users: self.store.count_users().await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::day_date;

    #[test]
    fn unix_days_are_utc_calendar_dates() {
        assert_eq!(day_date(0), "1970-01-01");
        assert_eq!(day_date(59), "1970-03-01");
        assert_eq!(day_date(11_016), "2000-02-29");
        assert_eq!(day_date(20_793), "2026-12-06");
        assert_eq!(day_date(-1), "1969-12-31");
    }
}
