//! The acceptance tests SC1–SC4 of wave2.md §4 on the pure planner, with a virtual clock.

use proptest::prelude::*;
use shoal_types::schedule::{CatchUp, CronClock, Overlap, Schedule, child_name};
use shoal_types::time::{GoDuration, UnixNanos};

use super::*;

const S: i64 = 1_000_000_000;

fn at(s: &str) -> UnixNanos {
    let t: civil::Stamp = s.parse().unwrap();
    t.0
}

/// RFC 3339 (UTC, `Z`) to nanoseconds without a date library: enough for test fixtures.
mod civil {
    pub struct Stamp(pub i64);

    impl std::str::FromStr for Stamp {
        type Err = String;

        fn from_str(s: &str) -> Result<Self, String> {
            let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().map_err(|e| e.to_string());
            let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
            let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
            // Days from civil (Howard Hinnant's algorithm).
            let y = if m <= 2 { y - 1 } else { y };
            let era = y.div_euclid(400);
            let yoe = y - era * 400;
            let mp = (m + 9) % 12;
            let doy = (153 * mp + 2) / 5 + d - 1;
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            let days = era * 146_097 + doe - 719_468;
            Ok(Stamp(
                ((days * 24 + hh) * 60 + mm) * 60 * 1_000_000_000 + (ss * 1_000_000_000),
            ))
        }
    }
}

/// A scheduled job driven by a virtual clock: the orchestrator's side of the contract, with
/// children that each run for `run_for`.
struct Sim {
    schedule: Schedule,
    clock: CronClock,
    handled_through: UnixNanos,
    up_since: UnixNanos,
    run_for: i64,
    /// (tick, started, ended) of every child.
    children: Vec<(UnixNanos, UnixNanos, UnixNanos)>,
    skipped: Vec<String>,
    replaced: usize,
}

impl Sim {
    fn new(schedule: Schedule, start: UnixNanos, run_for: i64) -> Self {
        Sim {
            clock: schedule.clock().unwrap(),
            schedule,
            handled_through: start,
            up_since: start,
            run_for,
            children: Vec::new(),
            skipped: Vec::new(),
            replaced: 0,
        }
    }

    fn running(&self, now: UnixNanos) -> bool {
        self.children.iter().any(|&(_, _, end)| end > now)
    }

    /// Evaluates at `now`, as the engine does when its timer fires, and applies the plan.
    fn step(&mut self, now: UnixNanos) -> TickPlan {
        let plan = plan_ticks(TickInput {
            schedule: &self.schedule,
            clock: &self.clock,
            handled_through: self.handled_through,
            up_since: self.up_since,
            running: self.running(now),
            now,
        });
        for a in &plan.actions {
            match a {
                TickAction::Run { tick, .. } => {
                    self.children.push((*tick, now, now + self.run_for));
                }
                TickAction::Replace { tick, .. } => {
                    for c in &mut self.children {
                        if c.2 > now {
                            c.2 = now;
                            self.replaced += 1;
                        }
                    }
                    self.children.push((*tick, now, now + self.run_for));
                }
                TickAction::Skip(s) => self.skipped.push(s.to_string()),
            }
        }
        assert!(plan.handled_through >= self.handled_through, "went back");
        self.handled_through = plan.handled_through;
        plan
    }

    /// Runs the engine's loop: wake at each plan's `next_wake` until `until`.
    fn run_until(&mut self, mut now: UnixNanos, until: UnixNanos) {
        while now <= until {
            match self.step(now).next_wake {
                Some(w) => now = w,
                None => break,
            }
        }
    }
}

fn every_2s() -> Schedule {
    Schedule::every("*/2 * * * * *")
}

#[test]
fn sc1_a_six_field_cron_makes_exactly_five_children_in_ten_virtual_seconds() {
    let start = at("2026-05-01T12:00:00Z") + S / 2;
    let mut sim = Sim::new(every_2s(), start, 0);
    sim.run_until(start, start + 10 * S);
    let names: Vec<String> = sim
        .children
        .iter()
        .map(|c| child_name("job", c.0))
        .collect();
    assert_eq!(
        names,
        [
            "job@2026-05-01T12:00:02Z",
            "job@2026-05-01T12:00:04Z",
            "job@2026-05-01T12:00:06Z",
            "job@2026-05-01T12:00:08Z",
            "job@2026-05-01T12:00:10Z"
        ]
    );
    assert!(sim.skipped.is_empty(), "{:?}", sim.skipped);
}

#[test]
fn sc1_the_next_wake_is_the_next_tick() {
    let start = at("2026-05-01T12:00:01Z");
    let mut sim = Sim::new(every_2s(), start, 0);
    let plan = sim.step(start);
    assert_eq!(plan.actions, []);
    assert_eq!(plan.next_wake, Some(start + S));
    let plan = sim.step(start + S);
    assert_eq!(plan.runs().collect::<Vec<_>>(), [start + S]);
    assert_eq!(plan.next_wake, Some(start + 3 * S));
}

#[test]
fn sc2_with_overlap_skip_children_never_overlap_and_each_skip_is_recorded() {
    let start = at("2026-05-01T12:00:00Z");
    let mut sim = Sim::new(every_2s(), start, 5 * S);
    sim.run_until(start, start + 20 * S);
    for pair in sim.children.windows(2) {
        assert!(pair[1].1 >= pair[0].2, "overlap: {pair:?}");
    }
    // Ticks at 2..=20 s: runs at 2, 8, 14, 20; the ticks at 4, 6, 10, 12, 16, 18 are skipped.
    let ticks: Vec<i64> = sim.children.iter().map(|c| (c.0 - start) / S).collect();
    assert_eq!(ticks, [2, 8, 14, 20]);
    assert_eq!(sim.skipped.len(), 6, "{:?}", sim.skipped);
    assert!(
        sim.skipped
            .iter()
            .all(|s| s == "skipped: previous run still running"),
        "{:?}",
        sim.skipped
    );
}

#[test]
fn sc2_with_overlap_replace_the_running_child_is_stopped_for_the_new_one() {
    let start = at("2026-05-01T12:00:00Z");
    let s = Schedule {
        overlap: Overlap::Replace,
        ..every_2s()
    };
    let mut sim = Sim::new(s, start, 5 * S);
    sim.run_until(start, start + 10 * S);
    assert_eq!(sim.children.len(), 5);
    assert_eq!(
        sim.replaced, 4,
        "each tick after the first replaced one child"
    );
    assert!(sim.skipped.is_empty());
    for pair in sim.children.windows(2) {
        assert!(pair[1].1 >= pair[0].2, "overlap: {pair:?}");
    }
}

#[test]
fn sc2_with_overlap_allow_every_tick_runs_beside_the_others() {
    let start = at("2026-05-01T12:00:00Z");
    let s = Schedule {
        overlap: Overlap::Allow,
        ..every_2s()
    };
    let mut sim = Sim::new(s, start, 5 * S);
    sim.run_until(start, start + 10 * S);
    assert_eq!(sim.children.len(), 5);
    assert!(sim.children[1].1 < sim.children[0].2, "they overlap");
}

/// 30 s of downtime across 15 ticks: the orchestrator handled the tick at 0 s and comes back
/// at 30.5 s.
fn after_downtime(s: Schedule) -> TickPlan {
    let t0 = at("2026-05-01T12:00:00Z");
    let mut sim = Sim::new(s, t0, 0);
    sim.up_since = t0 + 30 * S + S / 2;
    sim.step(sim.up_since)
}

#[test]
fn sc3_catch_up_last_runs_exactly_one_missed_tick() {
    let plan = after_downtime(every_2s());
    let runs: Vec<_> = plan.runs().collect();
    assert_eq!(runs, [at("2026-05-01T12:00:30Z")]);
    assert!(matches!(
        plan.actions.last(),
        Some(TickAction::Run { catch_up: true, .. })
    ));
    let skips: Vec<String> = plan.skips().map(ToString::to_string).collect();
    assert_eq!(
        skips,
        [
            "skipped 14 ticks (2026-05-01T12:00:02Z to 2026-05-01T12:00:28Z): missed while the orchestrator was down (CatchUp: last runs only the latest)"
        ]
    );
    assert_eq!(plan.handled_through, at("2026-05-01T12:00:30Z"));
}

#[test]
fn sc3_catch_up_none_runs_no_missed_tick() {
    let plan = after_downtime(Schedule {
        catch_up: CatchUp::None,
        ..every_2s()
    });
    assert_eq!(plan.runs().count(), 0);
    let skipped: u64 = plan.skips().map(|s| s.count).sum();
    assert_eq!(skipped, 15);
    assert_eq!(plan.handled_through, at("2026-05-01T12:00:30Z"));
    assert_eq!(plan.next_wake, Some(at("2026-05-01T12:00:32Z")));
}

#[test]
fn sc3_catch_up_all_runs_the_latest_max_catch_up_ticks() {
    let plan = after_downtime(Schedule {
        catch_up: CatchUp::All,
        max_catch_up: 10,
        overlap: Overlap::Allow,
        ..every_2s()
    });
    let runs: Vec<_> = plan.runs().collect();
    assert_eq!(runs.len(), 10);
    assert_eq!(runs[0], at("2026-05-01T12:00:12Z"));
    assert_eq!(runs[9], at("2026-05-01T12:00:30Z"));
    let skipped: Vec<_> = plan.skips().collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].count, 5);
}

#[test]
fn sc3_catch_up_all_with_overlap_skip_runs_one_and_skips_the_rest_as_overlapping() {
    let plan = after_downtime(Schedule {
        catch_up: CatchUp::All,
        max_catch_up: 10,
        ..every_2s()
    });
    assert_eq!(plan.runs().count(), 1);
    let reasons: Vec<(u64, SkipReason)> = plan.skips().map(|s| (s.count, s.reason)).collect();
    assert_eq!(
        reasons,
        [
            (
                5,
                SkipReason::Missed {
                    catch_up: CatchUp::All,
                    max: 10
                }
            ),
            (9, SkipReason::StillRunning)
        ]
    );
}

#[test]
fn sc3_a_tick_handled_before_a_restart_is_not_run_again() {
    // The child for 12:00:02 and handled_through = 12:00:02 were committed together; the
    // orchestrator died 100 ms later and is back at 12:00:03.
    let t = at("2026-05-01T12:00:02Z");
    let mut sim = Sim::new(every_2s(), t, 0);
    sim.up_since = t + S;
    let plan = sim.step(t + S);
    assert_eq!(plan.actions, []);
    assert_eq!(plan.next_wake, Some(t + 2 * S));
}

#[test]
fn a_year_of_downtime_on_a_per_second_cron_is_one_counted_span() {
    let t0 = at("2025-05-01T12:00:00Z");
    let mut sim = Sim::new(Schedule::every("* * * * * *"), t0, 0);
    sim.up_since = at("2026-05-01T12:00:00Z") + 1;
    let plan = sim.step(sim.up_since);
    assert_eq!(plan.runs().count(), 1);
    let skips: Vec<_> = plan.skips().collect();
    assert_eq!(skips.len(), 1);
    assert!(
        skips[0].more && skips[0].count == COUNT_CAP,
        "{:?}",
        skips[0]
    );
    assert!(
        skips[0].to_string().starts_with(
            "skipped more than 10000 ticks (2025-05-01T12:00:01Z to 2026-05-01T11:59:59Z)"
        ),
        "{}",
        skips[0]
    );
}

#[test]
fn a_tick_older_than_the_starting_deadline_is_skipped() {
    let s = Schedule {
        starting_deadline: GoDuration::from_secs(5),
        ..Schedule::every("0 * * * * *")
    };
    let t0 = at("2026-05-01T12:00:00Z");
    let mut sim = Sim::new(s, t0 - S, 0);
    sim.up_since = t0 - S;
    let plan = sim.step(t0 + 10 * S);
    assert_eq!(plan.runs().count(), 0);
    assert_eq!(
        plan.skips().map(ToString::to_string).collect::<Vec<_>>(),
        ["skipped: not started within StartingDeadline 5s"]
    );
    let mut sim = Sim::new(
        Schedule {
            starting_deadline: GoDuration::from_secs(5),
            ..Schedule::every("0 * * * * *")
        },
        t0 - S,
        0,
    );
    assert_eq!(sim.step(t0 + 4 * S).runs().count(), 1);
}

#[test]
fn a_suspended_schedule_runs_nothing_and_sleeps() {
    let s = Schedule {
        suspend: true,
        ..every_2s()
    };
    let t0 = at("2026-05-01T12:00:00Z");
    let mut sim = Sim::new(s, t0, 0);
    let plan = sim.step(t0 + 60 * S);
    assert_eq!(plan.actions, []);
    assert_eq!(plan.next_wake, None);
}

fn berlin(cron: &str) -> Schedule {
    Schedule {
        time_zone: "Europe/Berlin".into(),
        ..Schedule::every(cron)
    }
}

#[test]
fn sc4_in_the_spring_gap_a_fixed_time_runs_at_three() {
    let mut sim = Sim::new(berlin("30 2 * * *"), at("2026-03-27T12:00:00Z"), 0);
    sim.run_until(at("2026-03-27T12:00:00Z"), at("2026-03-31T12:00:00Z"));
    let local: Vec<String> = sim.children.iter().map(|c| sim.clock.local(c.0)).collect();
    assert_eq!(
        local,
        [
            "2026-03-28 02:30:00 CET",
            "2026-03-29 03:00:00 CEST",
            "2026-03-30 02:30:00 CEST",
            "2026-03-31 02:30:00 CEST"
        ]
    );
}

#[test]
fn sc4_in_the_autumn_overlap_a_fixed_time_runs_exactly_once() {
    let mut sim = Sim::new(berlin("30 2 * * *"), at("2026-10-24T12:00:00Z"), 0);
    sim.run_until(at("2026-10-24T12:00:00Z"), at("2026-10-26T12:00:00Z"));
    let on_the_25th = sim
        .children
        .iter()
        .filter(|c| sim.clock.local(c.0).starts_with("2026-10-25"))
        .count();
    assert_eq!(on_the_25th, 1);
    assert_eq!(sim.children.len(), 2);
}

proptest! {
    /// However irregularly the engine wakes (late timers, extra evaluations after reports),
    /// every tick gets exactly one child, in order.
    #[test]
    fn every_tick_runs_exactly_once_whatever_the_wake_ups(
        gaps in proptest::collection::vec(1i64..3_000, 1..60),
    ) {
        let s = Schedule { overlap: Overlap::Allow, ..every_2s() };
        let start = at("2026-05-01T12:00:00Z");
        let mut sim = Sim::new(s, start, 0);
        let mut now = start;
        for g in gaps {
            now += g * 1_000_000;
            sim.step(now);
        }
        let ticks: Vec<i64> = sim.children.iter().map(|c| c.0).collect();
        let expected: Vec<i64> = (1..).map(|k| start + 2 * k * S).take_while(|&t| t <= now).collect();
        prop_assert_eq!(ticks, expected);
        prop_assert!(sim.skipped.is_empty());
    }

    /// After any downtime, `last` runs at most one missed tick and every due tick is either
    /// run or counted as skipped.
    #[test]
    fn after_any_downtime_every_due_tick_is_run_or_counted(
        down in 0i64..120_000, catch_up in 0u8..3, max in 1u32..20,
    ) {
        // A tick exactly at the restart is on time, not missed: keep the restart off-tick.
        let down = if down % 2_000 == 0 { down + 1 } else { down };
        let catch_up = [CatchUp::None, CatchUp::Last, CatchUp::All][catch_up as usize];
        let s = Schedule { catch_up, max_catch_up: max, overlap: Overlap::Allow, ..every_2s() };
        let t0 = at("2026-05-01T12:00:00Z");
        let mut sim = Sim::new(s, t0, 0);
        sim.up_since = t0 + down * 1_000_000;
        let plan = sim.step(sim.up_since);
        let due = (down / 2_000) as u64;
        let runs = plan.runs().count() as u64;
        let skipped: u64 = plan.skips().map(|s| s.count).sum();
        prop_assert_eq!(runs + skipped, due);
        let cap = match catch_up { CatchUp::None => 0, CatchUp::Last => 1, CatchUp::All => max as u64 };
        prop_assert_eq!(runs, due.min(cap));
    }
}
