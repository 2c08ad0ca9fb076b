//! The `Schedule` block: a batch or ops job that runs again on a cron schedule.
//!
//! ```yaml
//! Schedule:
//!   Cron: "*/5 * * * *"        # 5 fields, or 6 with seconds first ("0 */5 * * * *"), or @daily
//!   TimeZone: Europe/Berlin     # IANA name; default UTC
//!   Overlap: skip               # skip (default) | allow | replace; Kubernetes' forbid = skip
//!   StartingDeadline: 10m       # a tick not started within this is skipped; default none
//!   CatchUp: last               # after downtime: none | last (default) | all
//!   MaxCatchUp: 10              # with CatchUp: all, at most this many missed ticks run
//!   Suspend: false              # true: no new runs until the job is updated with false
//! ```
//!
//! The job itself (the *parent*) never runs anywhere: on each tick the orchestrator creates a
//! child job `<name>@<tick in UTC, RFC 3339>` with the same spec minus `Schedule`, linked to
//! the parent by [`PARENT_META`]. `ConcurrencyPolicy` (Kubernetes' name) is read as `Overlap`.
//!
//! **Daylight saving time** follows croner (OCPS, Vixie cron): a fixed time that does not exist
//! (02:30 on the night clocks spring forward) runs at the first time after the gap (03:00); a
//! fixed time that happens twice (02:30 on the night clocks fall back) runs once, on the first
//! pass. Patterns with `*` or steps in the time fields run at every matching wall-clock time
//! that exists, so an hourly job runs twice in the repeated hour and not at all in the gap.
//!
//! Reading a user's file goes through [`crate::spec`], which reports a malformed value with its
//! path; [`Schedule::check`] adds the rules that need the job type or parsing the pattern.

use std::fmt;
use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::job::JobType;
use crate::spec::FieldError;
use crate::time::{GoDuration, UnixNanos};

/// The job `Meta` key that links a child job to the scheduled job (its parent) that made it.
pub const PARENT_META: &str = "shoal.io/parent";

/// The job `Meta` key that records which tick (RFC 3339, UTC) a child job runs for.
pub const TICK_META: &str = "shoal.io/schedule-tick";

/// The largest `MaxCatchUp`: more missed runs than this at once is a storm, not a catch-up.
pub const MAX_CATCH_UP_LIMIT: u32 = 1000;

/// What a tick does while an earlier child of the same parent is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Start nothing; the tick is recorded as skipped (Kubernetes' `Forbid`, Nomad's
    /// `prohibit_overlap`).
    #[default]
    #[serde(alias = "forbid")]
    Skip,
    /// Start another child beside the running one.
    Allow,
    /// Stop the running child, then start the new one.
    Replace,
}

/// Which ticks missed while the orchestrator was down are run when it is back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// None: missed ticks are recorded as skipped.
    None,
    /// The most recent missed tick runs once; older ones are recorded as skipped.
    #[default]
    Last,
    /// The most recent `MaxCatchUp` missed ticks run, oldest first; older ones are skipped.
    All,
}

macro_rules! wire_name {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(s)) => f.write_str(&s),
                    _ => Err(fmt::Error),
                }
            }
        }
    };
}
wire_name!(Overlap);
wire_name!(CatchUp);

/// A job's schedule settings (see the module docs for the wire form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Schedule {
    /// The cron pattern: 5 fields (minute hour day month weekday), 6 with seconds first, or a
    /// nickname (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`).
    pub cron: String,
    /// The IANA time zone the pattern is read in (default `UTC`).
    #[serde(default = "Schedule::default_time_zone")]
    pub time_zone: String,
    /// What a tick does while a previous child is still running.
    #[serde(default)]
    pub overlap: Overlap,
    /// A tick that cannot start within this of its time is skipped; zero means no deadline.
    #[serde(default, skip_serializing_if = "GoDuration::is_zero")]
    pub starting_deadline: GoDuration,
    /// What happens to ticks missed while the orchestrator was down.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// With `CatchUp: all`, at most this many missed ticks run (default 10).
    #[serde(default = "Schedule::default_max_catch_up")]
    pub max_catch_up: u32,
    /// No new runs while true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

impl Schedule {
    fn default_time_zone() -> String {
        "UTC".into()
    }

    fn default_max_catch_up() -> u32 {
        10
    }

    /// A schedule with this pattern and every other setting at its default.
    pub fn every(cron: &str) -> Self {
        Schedule {
            cron: cron.into(),
            time_zone: Schedule::default_time_zone(),
            overlap: Overlap::default(),
            starting_deadline: GoDuration::default(),
            catch_up: CatchUp::default(),
            max_catch_up: Schedule::default_max_catch_up(),
            suspend: false,
        }
    }

    /// Checks what a reader cannot: the job type, the pattern, the time zone and the limits.
    /// Paths start with `Schedule.`; every message says what to write.
    pub fn check(&self, job_type: JobType) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if job_type.is_long_running() {
            errs.push(FieldError::new(
                "Schedule",
                format!(
                    "{job_type} jobs cannot have a Schedule: a {job_type} job runs until it is stopped, so there is nothing to start again on a tick; use Type: ops (every matching node, once per tick) or Type: batch, or remove Schedule"
                ),
            ));
        }
        if let Err(why) = parse_cron(&self.cron) {
            errs.push(FieldError::new("Schedule.Cron", why));
        }
        if let Err(why) = time_zone(&self.time_zone) {
            errs.push(FieldError::new("Schedule.TimeZone", why));
        }
        if self.catch_up == CatchUp::All && self.max_catch_up == 0 {
            errs.push(FieldError::new(
                "Schedule.MaxCatchUp",
                "0 with CatchUp: all would run no missed tick; write CatchUp: none, or MaxCatchUp: 1 or more",
            ));
        }
        if self.max_catch_up > MAX_CATCH_UP_LIMIT {
            errs.push(FieldError::new(
                "Schedule.MaxCatchUp",
                format!(
                    "{} is over {MAX_CATCH_UP_LIMIT}: that many runs at once after downtime is a storm; write {MAX_CATCH_UP_LIMIT} or less",
                    self.max_catch_up
                ),
            ));
        }
        errs
    }

    /// The pattern and time zone, ready to compute ticks. Fails with the same messages as
    /// [`Schedule::check`] for a pattern or time zone it would refuse.
    pub fn clock(&self) -> Result<CronClock, String> {
        Ok(CronClock {
            cron: parse_cron(&self.cron)?,
            tz: time_zone(&self.time_zone)?,
        })
    }
}

const NICKNAMES: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Reads a cron pattern with optional seconds and no year field.
fn parse_cron(pattern: &str) -> Result<Cron, String> {
    let p = pattern.trim();
    let example = "write e.g. \"*/5 * * * *\" (minute hour day month weekday), \"0 */5 * * * *\" with seconds first, or @daily";
    if p.starts_with('@') {
        if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(p)) {
            return Err(format!(
                "{pattern:?} is not a cron nickname (known: {}); or {example}",
                NICKNAMES.join(", ")
            ));
        }
    } else {
        let fields = p.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "{pattern:?} has {fields} field{}, a cron pattern has 5 or 6; {example}",
                if fields == 1 { "" } else { "s" }
            ));
        }
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(p)
        .map_err(|e| {
            let why = e.to_string();
            let why = why.trim_end_matches('.');
            format!("{pattern:?} is not a cron pattern ({why}); {example}")
        })
}

/// Looks an IANA time zone up in the database bundled with Shoal (no host files needed).
fn time_zone(name: &str) -> Result<TimeZone, String> {
    let n = name.trim();
    if n.eq_ignore_ascii_case("utc") || n.is_empty() {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(n).map_err(|_| {
        format!(
            "unknown time zone {name:?}; write an IANA name such as Europe/Berlin, America/New_York or UTC"
        )
    })
}

/// A parsed pattern in its time zone: computes ticks as Unix nanoseconds. Pure: no clock.
#[derive(Debug, Clone)]
pub struct CronClock {
    cron: Cron,
    tz: TimeZone,
}

const SECOND: i64 = 1_000_000_000;

impl CronClock {
    /// The first tick strictly after `t`, if the pattern matches again before year 5000.
    pub fn next_after(&self, t: UnixNanos) -> Option<UnixNanos> {
        // Ticks are whole seconds; croner drops sub-second parts, so search from the second.
        let start = self.zoned(t.div_euclid(SECOND) * SECOND)?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        nanos(next.timestamp())
    }

    /// The last tick strictly before `t`.
    pub fn previous_before(&self, t: UnixNanos) -> Option<UnixNanos> {
        // Rounded up: every whole second before `t` is then strictly before the start.
        let start =
            self.zoned(t.div_euclid(SECOND) * SECOND + i64::from(t % SECOND != 0) * SECOND)?;
        let prev = self.cron.find_previous_occurrence(&start, false).ok()?;
        nanos(prev.timestamp())
    }

    /// `t` as wall-clock time in the schedule's zone, e.g. `2026-03-29 03:00:00 CEST`.
    pub fn local(&self, t: UnixNanos) -> String {
        match self.zoned(t) {
            Some(z) => z.strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
            None => crate::time::rfc3339(t),
        }
    }

    /// The pattern in English (croner's `describe`), e.g. "Every 5 minutes".
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    fn zoned(&self, t: UnixNanos) -> Option<jiff::Zoned> {
        Timestamp::from_nanosecond(i128::from(t))
            .ok()
            .map(|ts| ts.to_zoned(self.tz.clone()))
    }
}

fn nanos(t: Timestamp) -> Option<UnixNanos> {
    i64::try_from(t.as_nanosecond()).ok()
}

/// A tick as it appears in a child's name and in messages: RFC 3339 in UTC, to the second.
pub fn tick_name(t: UnixNanos) -> String {
    match Timestamp::from_nanosecond(i128::from(t)) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => crate::time::rfc3339(t),
    }
}

/// The child job name for a parent's tick: `<parent>@<tick>`.
pub fn child_name(parent: &str, tick: UnixNanos) -> String {
    format!("{parent}@{}", tick_name(tick))
}

impl FromStr for Overlap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.trim().to_ascii_lowercase()))
            .map_err(|_| format!("unknown overlap {s:?}; write skip, allow or replace"))
    }
}

/// What the orchestrator knows about a scheduled job's runs (`job describe`, Shoal extension).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleStatus {
    /// The next tick that will be handled; `None` once stopped or while suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<UnixNanos>,
    /// The latest tick handled (run or skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tick: Option<UnixNanos>,
    /// The latest children, newest first.
    #[serde(default)]
    pub runs: Vec<ScheduledRun>,
}

/// One child of a scheduled job.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduledRun {
    /// The tick it runs for.
    pub tick: UnixNanos,
    /// The child job's id.
    #[serde(rename = "JobID")]
    pub job_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> UnixNanos {
        nanos(s.parse::<Timestamp>().unwrap()).unwrap()
    }

    fn errors(s: &Schedule, t: JobType) -> Vec<String> {
        s.check(t).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn five_and_six_field_patterns_and_nicknames_are_accepted() {
        for p in [
            "*/5 * * * *",
            "*/2 * * * * *",
            "30 2 * * *",
            "@daily",
            "@HOURLY",
        ] {
            assert!(
                errors(&Schedule::every(p), JobType::Batch).is_empty(),
                "{p}"
            );
        }
    }

    #[test]
    fn a_pattern_with_the_wrong_number_of_fields_says_how_many_it_needs() {
        assert_eq!(
            errors(&Schedule::every("*/5 * * *"), JobType::Ops),
            [
                "Schedule.Cron: \"*/5 * * *\" has 4 fields, a cron pattern has 5 or 6; write e.g. \"*/5 * * * *\" (minute hour day month weekday), \"0 */5 * * * *\" with seconds first, or @daily"
            ]
        );
        let seven = errors(&Schedule::every("0 0 0 * * * 2026"), JobType::Ops);
        assert!(seven[0].contains("has 7 fields"), "{seven:?}");
        let bad = errors(&Schedule::every("61 * * * *"), JobType::Ops);
        assert!(
            bad[0].starts_with("Schedule.Cron: \"61 * * * *\" is not a cron pattern ("),
            "{bad:?}"
        );
        let nick = errors(&Schedule::every("@fortnightly"), JobType::Ops);
        assert!(nick[0].contains("is not a cron nickname"), "{nick:?}");
    }

    #[test]
    fn an_unknown_time_zone_names_the_field_and_an_example() {
        let s = Schedule {
            time_zone: "Europe/Berln".into(),
            ..Schedule::every("@daily")
        };
        assert_eq!(
            errors(&s, JobType::Batch),
            [
                "Schedule.TimeZone: unknown time zone \"Europe/Berln\"; write an IANA name such as Europe/Berlin, America/New_York or UTC"
            ]
        );
    }

    #[test]
    fn daemon_and_service_jobs_cannot_have_a_schedule() {
        for t in [JobType::Daemon, JobType::Service] {
            let errs = errors(&Schedule::every("@daily"), t);
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(
                errs[0].starts_with(&format!("Schedule: {t} jobs cannot have a Schedule")),
                "{errs:?}"
            );
            assert!(errs[0].contains("use Type: ops"), "{errs:?}");
        }
    }

    #[test]
    fn catch_up_limits_are_checked() {
        let s = Schedule {
            catch_up: CatchUp::All,
            max_catch_up: 0,
            ..Schedule::every("@hourly")
        };
        assert!(
            errors(&s, JobType::Batch)[0].starts_with("Schedule.MaxCatchUp: 0 with CatchUp: all")
        );
        let s = Schedule {
            max_catch_up: 5000,
            ..Schedule::every("@hourly")
        };
        assert!(errors(&s, JobType::Batch)[0].contains("5000 is over 1000"));
    }

    #[test]
    fn an_empty_block_but_the_pattern_takes_the_defaults() {
        let s: Schedule = serde_json::from_value(serde_json::json!({"Cron": "@daily"})).unwrap();
        assert_eq!(s, Schedule::every("@daily"));
        assert_eq!(s.overlap, Overlap::Skip);
        assert_eq!(s.catch_up, CatchUp::Last);
        assert_eq!(s.max_catch_up, 10);
        assert_eq!(s.time_zone, "UTC");
        let forbid: Overlap = serde_json::from_value("forbid".into()).unwrap();
        assert_eq!(forbid, Overlap::Skip);
    }

    #[test]
    fn ticks_are_strictly_after_and_strictly_before() {
        let c = Schedule::every("*/2 * * * * *").clock().unwrap();
        let t = at("2026-01-01T00:00:10Z");
        assert_eq!(c.next_after(t), Some(t + 2 * SECOND));
        assert_eq!(c.next_after(t + 1), Some(t + 2 * SECOND));
        assert_eq!(c.previous_before(t), Some(t - 2 * SECOND));
        assert_eq!(c.previous_before(t + 1), Some(t));
        assert_eq!(c.previous_before(t + SECOND), Some(t));
    }

    #[test]
    fn a_fixed_time_in_the_spring_gap_runs_when_the_gap_ends() {
        // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist.
        let s = Schedule {
            time_zone: "Europe/Berlin".into(),
            ..Schedule::every("30 2 * * *")
        };
        let c = s.clock().unwrap();
        let before = at("2026-03-28T12:00:00Z");
        let first = c.next_after(before).unwrap();
        assert_eq!(tick_name(first), "2026-03-29T01:00:00Z");
        assert_eq!(c.local(first), "2026-03-29 03:00:00 CEST");
        let second = c.next_after(first).unwrap();
        assert_eq!(c.local(second), "2026-03-30 02:30:00 CEST");
    }

    #[test]
    fn a_fixed_time_that_happens_twice_in_the_autumn_runs_once() {
        // Europe/Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 is seen twice.
        let s = Schedule {
            time_zone: "Europe/Berlin".into(),
            ..Schedule::every("30 2 * * *")
        };
        let c = s.clock().unwrap();
        let mut t = at("2026-10-24T12:00:00Z");
        let mut ticks = Vec::new();
        while t < at("2026-10-26T12:00:00Z") {
            t = c.next_after(t).unwrap();
            ticks.push(c.local(t));
        }
        assert_eq!(
            ticks,
            [
                "2026-10-25 02:30:00 CEST",
                "2026-10-26 02:30:00 CET",
                "2026-10-27 02:30:00 CET"
            ]
        );
    }

    #[test]
    fn child_names_carry_the_tick_in_utc() {
        assert_eq!(
            child_name("disk-check", at("2026-03-29T01:00:00Z")),
            "disk-check@2026-03-29T01:00:00Z"
        );
    }
}
