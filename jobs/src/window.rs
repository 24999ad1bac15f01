//! The legal calling window as pure arithmetic: given a calling policy (IANA
//! zone, business hours per weekday, the promotional DND band, weekends,
//! holidays, an end buffer), a call's purpose and the contact's zone, is a call
//! allowed to start now ([`is_open`]) and when is the next moment it may
//! ([`next_opening`]). Wall-clock rules are read in the contact's local time,
//! so daylight-saving days are handled (a band in a skipped hour opens when the
//! clocks jump; a repeated hour is open each time the clock reads inside the band).

use std::collections::BTreeSet;
use std::fmt;

use chrono::{
    DateTime, Datelike, DurationRound, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone,
    Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Why a call is made; it decides which rules apply (TRAI: promotional calls
/// only inside the DND band; opt-outs stop promotional and service calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Purpose {
    Transactional,
    Service,
    Promotional,
}

impl Purpose {
    pub const ALL: [Purpose; 3] = [Purpose::Transactional, Purpose::Service, Purpose::Promotional];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transactional => "transactional",
            Self::Service => "service",
            Self::Promotional => "promotional",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A daily band of local wall-clock time: from `open` (inclusive) to `close`
/// (exclusive), whole minutes, `close` after `open` on the same day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hours {
    pub open: NaiveTime,
    pub close: NaiveTime,
}

impl Hours {
    /// `Hours::new((9, 0), (21, 0))`; panics on an impossible time (for literals).
    pub fn new(open: (u32, u32), close: (u32, u32)) -> Self {
        let at = |(h, m): (u32, u32)| NaiveTime::from_hms_opt(h, m, 0).expect("a valid wall-clock time");
        Self { open: at(open), close: at(close) }
    }

    fn minutes(self) -> (u32, u32) {
        (minute_of_day(self.open), minute_of_day(self.close))
    }
}

/// Business hours for each weekday; a missing day is closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeeklyHours {
    pub mon: Option<Hours>,
    pub tue: Option<Hours>,
    pub wed: Option<Hours>,
    pub thu: Option<Hours>,
    pub fri: Option<Hours>,
    pub sat: Option<Hours>,
    pub sun: Option<Hours>,
}

impl WeeklyHours {
    pub fn every_day(hours: Hours) -> Self {
        let day = Some(hours);
        Self { mon: day, tue: day, wed: day, thu: day, fri: day, sat: day, sun: day }
    }

    pub fn on(&self, day: Weekday) -> Option<Hours> {
        match day {
            Weekday::Mon => self.mon,
            Weekday::Tue => self.tue,
            Weekday::Wed => self.wed,
            Weekday::Thu => self.thu,
            Weekday::Fri => self.fri,
            Weekday::Sat => self.sat,
            Weekday::Sun => self.sun,
        }
    }
}

/// When calls may start. Fields left out of a JSON body take their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallingPolicy {
    /// The zone the rules are read in when the contact has none of its own.
    #[serde(with = "zone_name")]
    pub timezone: Tz,
    pub business_hours: WeeklyHours,
    /// The DND band: promotional calls start only inside it (TRAI practice: 09:00-21:00).
    pub promotional_hours: Hours,
    pub weekends_allowed: bool,
    /// Local dates on which no call starts.
    pub holidays: BTreeSet<NaiveDate>,
    /// No call starts in the last this many minutes before a band closes.
    pub end_buffer_minutes: u32,
}

impl Default for CallingPolicy {
    fn default() -> Self {
        Self {
            timezone: chrono_tz::Asia::Kolkata,
            business_hours: WeeklyHours::every_day(Hours::new((9, 0), (21, 0))),
            promotional_hours: Hours::new((9, 0), (21, 0)),
            weekends_allowed: true,
            holidays: BTreeSet::new(),
            end_buffer_minutes: 15,
        }
    }
}

/// A policy that cannot be saved, naming the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    pub field: String,
    pub message: String,
}

/// At most this many holidays, so that [`next_opening`] of a valid policy
/// always finds an opening within [`SEARCH_DAYS`].
pub const MAX_HOLIDAYS: usize = 100;

/// How far ahead [`next_opening`] looks: more weeks than a valid policy can close with holidays.
pub const SEARCH_DAYS: usize = 7 * (MAX_HOLIDAYS + 2);

impl CallingPolicy {
    /// The zone a contact is called in: its own when known, else the policy's.
    pub fn zone_for(&self, contact_zone: Option<Tz>) -> Tz {
        contact_zone.unwrap_or(self.timezone)
    }

    /// Refuses a policy that is malformed or leaves no time at all to call
    /// for one of `purposes`.
    pub fn validate(&self, purposes: &[Purpose]) -> Result<(), PolicyError> {
        let days = [
            ("mon", self.business_hours.mon),
            ("tue", self.business_hours.tue),
            ("wed", self.business_hours.wed),
            ("thu", self.business_hours.thu),
            ("fri", self.business_hours.fri),
            ("sat", self.business_hours.sat),
            ("sun", self.business_hours.sun),
        ];
        for (name, hours) in days {
            if let Some(hours) = hours {
                check_hours(&format!("business_hours.{name}"), hours)?;
            }
        }
        check_hours("promotional_hours", self.promotional_hours)?;
        if self.end_buffer_minutes >= 24 * 60 {
            return Err(error("end_buffer_minutes", "must be less than a day"));
        }
        if self.holidays.len() > MAX_HOLIDAYS {
            return Err(error("holidays", format!("at most {MAX_HOLIDAYS} dates")));
        }
        for &purpose in purposes {
            let open_some_weekday = WEEK.iter().any(|&day| self.band_on_weekday(purpose, day).is_some());
            if !open_some_weekday {
                return Err(error(
                    "business_hours",
                    format!(
                        "leaves no time to start a {purpose} call (check hours, weekends, the promotional band and the end buffer)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The minutes of `date` in which a `purpose` call may start: `[start, end)`.
    fn band(&self, purpose: Purpose, date: NaiveDate) -> Option<(u32, u32)> {
        if self.holidays.contains(&date) {
            return None;
        }
        self.band_on_weekday(purpose, date.weekday())
    }

    fn band_on_weekday(&self, purpose: Purpose, day: Weekday) -> Option<(u32, u32)> {
        if !self.weekends_allowed && matches!(day, Weekday::Sat | Weekday::Sun) {
            return None;
        }
        let (mut open, mut close) = self.business_hours.on(day)?.minutes();
        if purpose == Purpose::Promotional {
            let (dnd_open, dnd_close) = self.promotional_hours.minutes();
            (open, close) = (open.max(dnd_open), close.min(dnd_close));
        }
        let last_start = close.checked_sub(self.end_buffer_minutes)?;
        (open < last_start).then_some((open, last_start))
    }
}

const WEEK: [Weekday; 7] =
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

fn error(field: &str, message: impl Into<String>) -> PolicyError {
    PolicyError { field: field.to_owned(), message: message.into() }
}

fn check_hours(field: &str, hours: Hours) -> Result<(), PolicyError> {
    if hours.open.second() != 0 || hours.close.second() != 0 || hours.open.nanosecond() != 0 {
        return Err(error(field, "use whole minutes (HH:MM)"));
    }
    if hours.open >= hours.close {
        return Err(error(field, "open must be before close (bands cannot cross midnight)"));
    }
    Ok(())
}

fn minute_of_day(time: NaiveTime) -> u32 {
    time.hour() * 60 + time.minute()
}

/// Whether a `purpose` call may start at `at` for a contact in `zone`.
pub fn is_open(policy: &CallingPolicy, purpose: Purpose, zone: Tz, at: DateTime<Utc>) -> bool {
    let local = at.with_timezone(&zone);
    policy
        .band(purpose, local.date_naive())
        .is_some_and(|(start, end)| (start..end).contains(&minute_of_day(local.time())))
}

/// The first instant at or after `after` when a `purpose` call may start for a
/// contact in `zone`; `None` when none exists within [`SEARCH_DAYS`] (never for
/// a policy that passed [`CallingPolicy::validate`] for `purpose`).
pub fn next_opening(policy: &CallingPolicy, purpose: Purpose, zone: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let first_day = after.with_timezone(&zone).date_naive();
    first_day.iter_days().take(SEARCH_DAYS).find_map(|day| {
        let (start, end) = policy.band(purpose, day)?;
        if steady_offset(zone, day) {
            let candidate = after.max(wall_clock(zone, day, start));
            (candidate < wall_clock(zone, day, end)).then_some(candidate)
        } else {
            scan_day_by_minute(policy, purpose, zone, day, after)
        }
    })
}

/// On a day with a clock change, the open set is found minute by minute (the
/// band's edges and the zone's changes all fall on whole minutes).
fn scan_day_by_minute(
    policy: &CallingPolicy,
    purpose: Purpose,
    zone: Tz,
    day: NaiveDate,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let day_start = after.max(wall_clock(zone, day, 0));
    let day_end = wall_clock(zone, day.succ_opt()?, 0);
    if is_open(policy, purpose, zone, day_start) {
        return Some(day_start);
    }
    let first_minute = day_start.duration_trunc(TimeDelta::minutes(1)).ok()? + TimeDelta::minutes(1);
    std::iter::successors(Some(first_minute), |t| Some(*t + TimeDelta::minutes(1)))
        .take_while(|t| *t < day_end)
        .find(|t| is_open(policy, purpose, zone, *t))
}

/// True when the zone's offset is the same all through the local `day`.
fn steady_offset(zone: Tz, day: NaiveDate) -> bool {
    let Some(next_day) = day.succ_opt() else { return false };
    let offset_at = |t: DateTime<Utc>| -> FixedOffset { zone.offset_from_utc_datetime(&t.naive_utc()).fix() };
    let (start, end) = (wall_clock(zone, day, 0), wall_clock(zone, next_day, 0) - TimeDelta::seconds(1));
    offset_at(start) == offset_at(end)
}

/// The first instant at which the local clock on `day` reads `minute` (past
/// midnight) or later: a time skipped by a clock change maps to when the clocks jump.
fn wall_clock(zone: Tz, day: NaiveDate, minute: u32) -> DateTime<Utc> {
    let wanted: NaiveDateTime = day.and_time(NaiveTime::MIN) + TimeDelta::minutes(minute.into());
    (0..=24 * 60)
        .find_map(|late| zone.from_local_datetime(&(wanted + TimeDelta::minutes(late))).earliest())
        .map(|local| local.with_timezone(&Utc))
        .expect("every zone has a valid wall-clock time within a day")
}

/// Serialises a zone as its IANA name and refuses unknown names.
mod zone_name {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(zone: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(zone.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(|_| D::Error::custom(format!("unknown IANA time zone {name:?}")))
    }
}
