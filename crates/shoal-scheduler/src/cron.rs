//! Which ticks of a scheduled job to run now: a pure function of the schedule, the last tick
//! handled, whether a child still runs, when the orchestrator came up, and `now`.
//!
//! ```text
//!   handled_through        up_since                       now
//! ───────┼────────x────x────x──┼────x─────────x─────────────┼──── next_wake ──▶
//!                 missed ticks       on-time ticks
//!                 (CatchUp, MaxCatchUp)
//! ```
//!
//! - A tick is *due* when it lies in `(handled_through, now]`. Every due tick is handled exactly
//!   once: run, replaced into, or skipped with a reason; the caller stores the plan's
//!   `handled_through` in the same transaction as the children it creates, so a restart never
//!   runs a tick twice and never loses one.
//! - Due ticks before `up_since` were *missed* (the orchestrator was down). `CatchUp: none`
//!   skips them all, `last` runs the newest, `all` the newest `MaxCatchUp`. Older ones are
//!   reported as one skipped span with a count (capped at [`COUNT_CAP`]), never one event each,
//!   and are never enumerated past the cap, so a long outage cannot get the schedule stuck
//!   (kubernetes#36311) or flood the history.
//! - `StartingDeadline` skips a tick that is older than the deadline when it is handled.
//! - `Overlap` decides between the remaining ticks and a running child: `skip` runs a tick only
//!   when nothing runs (and what it started counts as running for the next tick of the same
//!   plan), `allow` runs every tick, `replace` runs only the newest and stops what runs.
//!
//! So `CatchUp: all` with `Overlap: skip` runs one missed tick and skips the rest as
//! overlapping; `Overlap: allow` runs them side by side.

use std::fmt;

use shoal_types::schedule::{CatchUp, CronClock, Overlap, Schedule, tick_name};
use shoal_types::time::{GoDuration, UnixNanos};

/// The most ticks counted for a skipped span before the count says "more than".
pub const COUNT_CAP: u64 = 10_000;

/// The most on-time ticks handled in one plan; the rest wait for the next one (at once).
pub const ON_TIME_CAP: usize = 1_000;

/// What one evaluation of a scheduled job knows.
#[derive(Debug, Clone, Copy)]
pub struct TickInput<'a> {
    /// The job's schedule settings.
    pub schedule: &'a Schedule,
    /// The pattern in its time zone.
    pub clock: &'a CronClock,
    /// Ticks at or before this are handled: the last tick handled, or when the schedule began
    /// (submission or update).
    pub handled_through: UnixNanos,
    /// When this orchestrator started; due ticks before it were missed while it was down.
    pub up_since: UnixNanos,
    /// Whether a child of the job is still running.
    pub running: bool,
    /// The current time.
    pub now: UnixNanos,
}

/// What to do, in tick order, and what to remember.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickPlan {
    /// Runs and skips, oldest tick first.
    pub actions: Vec<TickAction>,
    /// The new `handled_through`: store it with the children the actions create.
    pub handled_through: UnixNanos,
    /// When the job next needs evaluating; `None` while suspended or when the pattern never
    /// matches again.
    pub next_wake: Option<UnixNanos>,
}

impl TickPlan {
    /// The ticks that get a child, in order.
    pub fn runs(&self) -> impl Iterator<Item = UnixNanos> + '_ {
        self.actions.iter().filter_map(|a| match a {
            TickAction::Run { tick, .. } | TickAction::Replace { tick, .. } => Some(*tick),
            TickAction::Skip(_) => None,
        })
    }

    /// The skipped spans, in order.
    pub fn skips(&self) -> impl Iterator<Item = &Skipped> + '_ {
        self.actions.iter().filter_map(|a| match a {
            TickAction::Skip(s) => Some(s),
            _ => None,
        })
    }
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickAction {
    /// Start a child for `tick`.
    Run {
        /// The tick.
        tick: UnixNanos,
        /// Whether it was missed while the orchestrator was down.
        catch_up: bool,
    },
    /// Stop every running child of the job, then start one for `tick`.
    Replace {
        /// The tick.
        tick: UnixNanos,
        /// Whether it was missed while the orchestrator was down.
        catch_up: bool,
    },
    /// Start nothing for a span of ticks.
    Skip(Skipped),
}

/// Ticks that got no child, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The first tick of the span.
    pub first: UnixNanos,
    /// The last tick of the span (the same as `first` for one tick).
    pub last: UnixNanos,
    /// How many ticks, up to [`COUNT_CAP`].
    pub count: u64,
    /// Whether there were more than `count`.
    pub more: bool,
    /// Why.
    pub reason: SkipReason,
}

/// Why ticks were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `Overlap: skip` and a child was still running.
    StillRunning,
    /// `Overlap: replace` and a newer tick in the same plan ran instead.
    Superseded,
    /// Missed while the orchestrator was down, and `CatchUp` does not run them.
    Missed {
        /// The policy.
        catch_up: CatchUp,
        /// `MaxCatchUp` (for `all`).
        max: u32,
    },
    /// Older than `StartingDeadline` when handled.
    PastDeadline {
        /// The deadline.
        deadline: GoDuration,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::StillRunning => f.write_str("previous run still running"),
            SkipReason::Superseded => f.write_str("a newer tick replaced it"),
            SkipReason::Missed {
                catch_up: CatchUp::None,
                ..
            } => f.write_str("missed while the orchestrator was down (CatchUp: none)"),
            SkipReason::Missed {
                catch_up: CatchUp::Last,
                ..
            } => f.write_str(
                "missed while the orchestrator was down (CatchUp: last runs only the latest)",
            ),
            SkipReason::Missed {
                catch_up: CatchUp::All,
                max,
            } => write!(
                f,
                "missed while the orchestrator was down (CatchUp: all runs the latest {max}, MaxCatchUp)"
            ),
            SkipReason::PastDeadline { deadline } => {
                write!(f, "not started within StartingDeadline {deadline}")
            }
        }
    }
}

impl fmt::Display for Skipped {
    /// `skipped: previous run still running` for one tick; with the span and count for more.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 1 && !self.more {
            write!(f, "skipped: {}", self.reason)
        } else {
            write!(
                f,
                "skipped {}{} ticks ({} to {}): {}",
                if self.more { "more than " } else { "" },
                self.count,
                tick_name(self.first),
                tick_name(self.last),
                self.reason
            )
        }
    }
}

/// Decides what to do with the due ticks (see the module docs).
pub fn plan_ticks(input: TickInput<'_>) -> TickPlan {
    let TickInput {
        schedule,
        clock,
        handled_through,
        up_since,
        now,
        ..
    } = input;
    if schedule.suspend {
        return TickPlan {
            actions: Vec::new(),
            handled_through,
            next_wake: None,
        };
    }
    let mut actions = Vec::new();
    let mut candidates: Vec<(UnixNanos, bool)> = Vec::new();
    let mut newest = handled_through;

    // Missed: due ticks before `up_since`, found from the newest backwards.
    let missed_end = up_since.min(now.saturating_add(1));
    let keep = match schedule.catch_up {
        CatchUp::None => 0,
        CatchUp::Last => 1,
        CatchUp::All => schedule.max_catch_up as usize,
    };
    let mut kept = Vec::new();
    let mut cursor = missed_end;
    while kept.len() < keep {
        match clock.previous_before(cursor) {
            Some(t) if t > handled_through => {
                kept.push(t);
                cursor = t;
            }
            _ => break,
        }
    }
    kept.reverse();
    if let Some(&last_missed) = kept.last() {
        newest = newest.max(last_missed);
    }
    let older_end = kept.first().copied().unwrap_or(missed_end);
    if let Some(span) = span_before(clock, handled_through, older_end) {
        newest = newest.max(span.last);
        actions.push(TickAction::Skip(Skipped {
            reason: SkipReason::Missed {
                catch_up: schedule.catch_up,
                max: schedule.max_catch_up,
            },
            ..span
        }));
    }
    candidates.extend(kept.into_iter().map(|t| (t, true)));

    // On time: due ticks from `up_since` on, oldest first.
    let mut cursor = handled_through.max(up_since.saturating_sub(1));
    let mut capped = false;
    while let Some(t) = clock.next_after(cursor).filter(|&t| t <= now) {
        if candidates.len() >= ON_TIME_CAP + keep {
            capped = true;
            break;
        }
        candidates.push((t, false));
        newest = newest.max(t);
        cursor = t;
    }

    // Deadline, then overlap.
    let deadline = schedule.starting_deadline;
    let mut runnable = Vec::new();
    for (tick, catch_up) in candidates {
        if !deadline.is_zero() && now - tick > deadline.nanos() {
            push_skip(&mut actions, tick, SkipReason::PastDeadline { deadline });
        } else {
            runnable.push((tick, catch_up));
        }
    }
    let mut running = input.running;
    let last = runnable.len().saturating_sub(1);
    for (i, (tick, catch_up)) in runnable.into_iter().enumerate() {
        match schedule.overlap {
            Overlap::Skip if running => push_skip(&mut actions, tick, SkipReason::StillRunning),
            Overlap::Skip | Overlap::Allow => actions.push(TickAction::Run { tick, catch_up }),
            Overlap::Replace if i < last => push_skip(&mut actions, tick, SkipReason::Superseded),
            Overlap::Replace if running => actions.push(TickAction::Replace { tick, catch_up }),
            Overlap::Replace => actions.push(TickAction::Run { tick, catch_up }),
        }
        running = true;
    }
    actions.sort_by_key(|a| match a {
        TickAction::Run { tick, .. } | TickAction::Replace { tick, .. } => *tick,
        TickAction::Skip(s) => s.first,
    });
    TickPlan {
        actions,
        handled_through: newest,
        next_wake: if capped {
            Some(now)
        } else {
            clock.next_after(now.max(newest))
        },
    }
}

/// Adds one skipped tick, merging it into the previous skip when that has the same reason and
/// ends at the tick before (so a catch-up of 1,000 overlapping ticks is one event, not 1,000).
fn push_skip(actions: &mut Vec<TickAction>, tick: UnixNanos, reason: SkipReason) {
    if let Some(TickAction::Skip(s)) = actions.last_mut()
        && s.reason == reason
        && s.last < tick
    {
        s.last = tick;
        s.count += 1;
        return;
    }
    actions.push(TickAction::Skip(Skipped {
        first: tick,
        last: tick,
        count: 1,
        more: false,
        reason,
    }));
}

/// The ticks strictly between `after` and `before`, as a span (reason to be set by the
/// caller), counting at most [`COUNT_CAP`] of them.
fn span_before(clock: &CronClock, after: UnixNanos, before: UnixNanos) -> Option<Skipped> {
    let first = clock.next_after(after).filter(|&t| t < before)?;
    let last = clock.previous_before(before).filter(|&t| t >= first)?;
    let mut count = 1;
    let mut t = first;
    while t < last && count < COUNT_CAP {
        match clock.next_after(t) {
            Some(n) if n <= last => {
                t = n;
                count += 1;
            }
            _ => break,
        }
    }
    Some(Skipped {
        first,
        last,
        count,
        more: t < last,
        reason: SkipReason::StillRunning,
    })
}

#[cfg(test)]
mod tests;
