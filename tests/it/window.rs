//! The calling window's arithmetic: readable cases, then properties over
//! random policies, zones (with daylight saving) and instants.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use proptest::prelude::*;
use switchboard_jobs::window::{CallingPolicy, Hours, Purpose, WeeklyHours, is_open, next_opening};

const IST: Tz = chrono_tz::Asia::Kolkata;
const NEW_YORK: Tz = chrono_tz::America::New_York;

fn local(zone: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    zone.with_ymd_and_hms(y, mo, d, h, mi, 0).earliest().expect("a real local time").with_timezone(&Utc)
}

#[test]
fn promotional_call_at_2230_ist_opens_at_0900_next_day() {
    // Thursday 2026-11-19 22:30 IST.
    let after = local(IST, 2026, 11, 19, 22, 30);
    let opening = next_opening(&CallingPolicy::default(), Purpose::Promotional, IST, after);
    assert_eq!(opening, Some(local(IST, 2026, 11, 20, 9, 0)));
}

#[test]
fn promotional_call_on_friday_night_waits_for_monday_when_weekends_are_closed() {
    let policy = CallingPolicy { weekends_allowed: false, ..CallingPolicy::default() };
    let friday_night = local(IST, 2026, 11, 20, 22, 30);
    assert_eq!(next_opening(&policy, Purpose::Promotional, IST, friday_night), Some(local(IST, 2026, 11, 23, 9, 0)));
}

#[test]
fn holidays_are_skipped() {
    let monday = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let policy =
        CallingPolicy { weekends_allowed: false, holidays: BTreeSet::from([monday]), ..CallingPolicy::default() };
    let friday_night = local(IST, 2026, 11, 20, 22, 30);
    assert_eq!(next_opening(&policy, Purpose::Service, IST, friday_night), Some(local(IST, 2026, 11, 24, 9, 0)));
}

#[test]
fn no_call_starts_inside_the_end_buffer() {
    let policy = CallingPolicy::default();
    assert!(is_open(&policy, Purpose::Promotional, IST, local(IST, 2026, 11, 19, 20, 44)));
    assert!(!is_open(&policy, Purpose::Promotional, IST, local(IST, 2026, 11, 19, 20, 45)));
}

#[test]
fn transactional_calls_ignore_the_promotional_band() {
    let policy = CallingPolicy {
        business_hours: WeeklyHours::every_day(Hours::new((7, 0), (23, 0))),
        ..CallingPolicy::default()
    };
    let at = local(IST, 2026, 11, 19, 22, 0);
    assert!(is_open(&policy, Purpose::Transactional, IST, at));
    assert!(!is_open(&policy, Purpose::Promotional, IST, at));
}

#[test]
fn an_open_instant_is_its_own_next_opening() {
    let at = local(IST, 2026, 11, 19, 12, 34) + TimeDelta::seconds(17);
    assert_eq!(next_opening(&CallingPolicy::default(), Purpose::Service, IST, at), Some(at));
}

#[test]
fn a_contacts_own_zone_wins_over_the_policys() {
    let policy = CallingPolicy::default();
    assert_eq!(policy.zone_for(Some(NEW_YORK)), NEW_YORK);
    assert_eq!(policy.zone_for(None), IST);
    // 22:30 in Kolkata is 12:00 in New York (EST).
    let at = local(IST, 2026, 11, 19, 22, 30);
    assert!(is_open(&policy, Purpose::Promotional, NEW_YORK, at));
}

#[test]
fn a_band_starting_in_the_skipped_hour_opens_when_the_clocks_jump() {
    // 2026-03-08: New York jumps from 02:00 EST to 03:00 EDT.
    let policy = CallingPolicy {
        business_hours: WeeklyHours::every_day(Hours::new((2, 30), (5, 0))),
        end_buffer_minutes: 0,
        ..CallingPolicy::default()
    };
    let after = local(NEW_YORK, 2026, 3, 8, 0, 0);
    let jump = Utc.with_ymd_and_hms(2026, 3, 8, 7, 0, 0).unwrap();
    assert_eq!(next_opening(&policy, Purpose::Transactional, NEW_YORK, after), Some(jump));
}

#[test]
fn a_repeated_hour_reopens_when_the_clocks_fall_back() {
    // 2026-11-01: New York falls back from 02:00 EDT to 01:00 EST (06:00 UTC).
    let policy = CallingPolicy {
        business_hours: WeeklyHours::every_day(Hours::new((0, 30), (1, 30))),
        end_buffer_minutes: 0,
        ..CallingPolicy::default()
    };
    let after_first_close = Utc.with_ymd_and_hms(2026, 11, 1, 5, 30, 0).unwrap(); // 01:30 EDT
    let fall_back = Utc.with_ymd_and_hms(2026, 11, 1, 6, 0, 0).unwrap(); // 01:00 EST
    assert_eq!(next_opening(&policy, Purpose::Transactional, NEW_YORK, after_first_close), Some(fall_back));
}

#[test]
fn a_policy_without_any_open_time_is_refused() {
    let closed = CallingPolicy { business_hours: WeeklyHours::default(), ..CallingPolicy::default() };
    assert_eq!(closed.validate(&Purpose::ALL).unwrap_err().field, "business_hours");

    let only_mornings = CallingPolicy {
        business_hours: WeeklyHours::every_day(Hours::new((6, 0), (9, 10))),
        ..CallingPolicy::default()
    };
    assert!(only_mornings.validate(&[Purpose::Transactional]).is_ok());
    assert!(only_mornings.validate(&[Purpose::Promotional]).is_err(), "09:00-09:10 minus a 15 minute buffer");

    let weekend_only = CallingPolicy {
        business_hours: WeeklyHours { sat: Some(Hours::new((9, 0), (18, 0))), ..WeeklyHours::default() },
        weekends_allowed: false,
        ..CallingPolicy::default()
    };
    assert!(weekend_only.validate(&[Purpose::Service]).is_err());
}

#[test]
fn malformed_hours_are_refused_naming_the_day() {
    let backwards = CallingPolicy {
        business_hours: WeeklyHours {
            tue: Some(Hours::new((18, 0), (9, 0))),
            ..WeeklyHours::every_day(Hours::new((9, 0), (18, 0)))
        },
        ..CallingPolicy::default()
    };
    assert_eq!(backwards.validate(&Purpose::ALL).unwrap_err().field, "business_hours.tue");
}

#[test]
fn policy_json_fills_missing_fields_with_defaults_and_rejects_unknown_zones() {
    let policy: CallingPolicy =
        serde_json::from_str(r#"{"timezone":"America/New_York","end_buffer_minutes":5}"#).unwrap();
    assert_eq!((policy.timezone, policy.end_buffer_minutes), (NEW_YORK, 5));
    assert_eq!(policy.promotional_hours, Hours::new((9, 0), (21, 0)));
    assert!(serde_json::from_str::<CallingPolicy>(r#"{"timezone":"Mars/Olympus"}"#).is_err());
    let round_trip: CallingPolicy = serde_json::from_value(serde_json::to_value(&policy).unwrap()).unwrap();
    assert_eq!(round_trip, policy);
}

// ---- properties ----

fn zones() -> impl Strategy<Value = Tz> {
    prop_oneof![
        Just(IST),
        Just(NEW_YORK),
        Just(chrono_tz::Europe::London),
        Just(chrono_tz::Australia::Lord_Howe), // a 30-minute clock change
        Just(chrono_tz::Asia::Kathmandu),
        Just(chrono_tz::Pacific::Chatham),
    ]
}

fn hours() -> impl Strategy<Value = Hours> {
    (0u32..1439)
        .prop_flat_map(|open| (Just(open), open + 1..=1439))
        .prop_map(|(open, close)| Hours::new((open / 60, open % 60), (close / 60, close % 60)))
}

fn policies() -> impl Strategy<Value = CallingPolicy> {
    let week = proptest::collection::vec(proptest::option::weighted(0.8, hours()), 7);
    let holidays = proptest::collection::btree_set(0i64..60, 0..12);
    (zones(), week, hours(), any::<bool>(), holidays, 0u32..90).prop_map(
        |(timezone, week, promotional_hours, weekends_allowed, holiday_offsets, end_buffer_minutes)| {
            let base = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
            CallingPolicy {
                timezone,
                business_hours: WeeklyHours {
                    mon: week[0],
                    tue: week[1],
                    wed: week[2],
                    thu: week[3],
                    fri: week[4],
                    sat: week[5],
                    sun: week[6],
                },
                promotional_hours,
                weekends_allowed,
                holidays: holiday_offsets.into_iter().map(|d| base + TimeDelta::days(d)).collect(),
                end_buffer_minutes,
            }
        },
    )
}

/// Instants anywhere in 2026, and instants near New York's and London's clock changes.
fn instants() -> impl Strategy<Value = DateTime<Utc>> {
    let year_2026 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let clock_changes = [
        Utc.with_ymd_and_hms(2026, 3, 8, 7, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 1, 6, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 10, 25, 1, 0, 0).unwrap(),
    ];
    prop_oneof![
        (0i64..365 * 86400).prop_map(move |s| year_2026 + TimeDelta::seconds(s)),
        (0usize..clock_changes.len(), -2 * 86400i64..2 * 86400)
            .prop_map(move |(i, s)| clock_changes[i] + TimeDelta::seconds(s)),
    ]
}

/// How much of the gap before an opening is checked minute by minute.
const CHECKED_GAP_MINUTES: i64 = 4 * 24 * 60;

/// The properties every answer of `next_opening` has.
fn check_opening(
    policy: &CallingPolicy,
    purpose: Purpose,
    zone: Tz,
    after: DateTime<Utc>,
) -> Result<(), TestCaseError> {
    let opening = next_opening(policy, purpose, zone, after);
    if policy.validate(&[purpose]).is_ok() {
        prop_assert!(opening.is_some(), "a valid policy always opens");
    }
    let Some(opening) = opening else { return Ok(()) };
    prop_assert!(opening >= after);
    prop_assert!(is_open(policy, purpose, zone, opening), "{opening} is closed");
    let local_day = opening.with_timezone(&zone).date_naive();
    prop_assert!(!policy.holidays.contains(&local_day));
    prop_assert!(policy.weekends_allowed || !matches!(local_day.weekday(), Weekday::Sat | Weekday::Sun));
    if opening > after {
        prop_assert!(!is_open(policy, purpose, zone, after));
        let first_minute = after + TimeDelta::seconds(60 - after.timestamp().rem_euclid(60));
        let checked_until = opening.min(after + TimeDelta::minutes(CHECKED_GAP_MINUTES));
        let mut t = first_minute;
        while t < checked_until {
            prop_assert!(!is_open(policy, purpose, zone, t), "{t} is open before {opening}");
            t += TimeDelta::minutes(1);
        }
    }
    Ok(())
}

/// Bands that open or close in the small hours, where clocks change.
fn small_hours() -> impl Strategy<Value = Hours> {
    (0u32..240)
        .prop_flat_map(|open| (Just(open), open + 1..=300))
        .prop_map(|(open, close)| Hours::new((open / 60, open % 60), (close / 60, close % 60)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn next_opening_is_open_not_early_and_nothing_opens_before_it(
        policy in policies(),
        purpose in prop_oneof![Just(Purpose::Transactional), Just(Purpose::Service), Just(Purpose::Promotional)],
        contact_zone in proptest::option::of(zones()),
        after in instants(),
    ) {
        check_opening(&policy, purpose, policy.zone_for(contact_zone), after)?;
    }

    #[test]
    fn next_opening_holds_across_clock_changes(
        band in small_hours(),
        end_buffer_minutes in 0u32..30,
        zone in prop_oneof![Just(NEW_YORK), Just(chrono_tz::Europe::London), Just(chrono_tz::Australia::Lord_Howe)],
        change in 0usize..6,
        offset_s in -86400i64..86400,
    ) {
        let changes = [
            Utc.with_ymd_and_hms(2026, 3, 8, 7, 0, 0).unwrap(),   // New York springs forward
            Utc.with_ymd_and_hms(2026, 11, 1, 6, 0, 0).unwrap(),  // New York falls back
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap(),  // London springs forward
            Utc.with_ymd_and_hms(2026, 10, 25, 1, 0, 0).unwrap(), // London falls back
            Utc.with_ymd_and_hms(2026, 4, 4, 15, 0, 0).unwrap(),  // Lord Howe falls back 30 min
            Utc.with_ymd_and_hms(2026, 10, 3, 15, 30, 0).unwrap(), // Lord Howe springs forward 30 min
        ];
        let policy = CallingPolicy {
            timezone: zone,
            business_hours: WeeklyHours::every_day(band),
            end_buffer_minutes,
            ..CallingPolicy::default()
        };
        check_opening(&policy, Purpose::Transactional, zone, changes[change] + TimeDelta::seconds(offset_s))?;
    }

    #[test]
    fn promotional_calls_never_open_outside_the_dnd_band(policy in policies(), after in instants()) {
        let zone = policy.timezone;
        if let Some(opening) = next_opening(&policy, Purpose::Promotional, zone, after) {
            let time = opening.with_timezone(&zone).time();
            prop_assert!(time >= policy.promotional_hours.open && time < policy.promotional_hours.close);
        }
    }
}
