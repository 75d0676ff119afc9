//! How much inspection the pool can take on, and who is responsible when it cannot.
//!
//! Overload is a capacity problem, not a verdict: a stream already on air is never cut because
//! others made the pool short. So the pool refuses a new stream at its publish when taking it
//! would go past its capacity (the broadcaster is told, retries, and a balancer sends it where
//! there is room), and when it is short all the same (streams grew costlier after they were
//! taken), it lowers the sampling of the streams that cost more than an even share first, and
//! cuts for lost coverage only a stream that made itself costly: one over its cost budget
//! (`inspect.max_stream_cost`), one that grew far past what it cost once admitted, or one whose
//! frames between keyframes look unlike its keyframes (built to hide behind them).
//!
//! Costs are shares of a core, averaged over about a second, as the pool measures them.

use std::time::Duration;

/// How long a new stream is counted at least at the estimate, until its own cost is known.
pub const WARMUP: Duration = Duration::from_secs(5);
/// How long an admission holds its place before the stream's inspection opens.
pub const RESERVATION: Duration = Duration::from_secs(2);
/// A stream costing more than this many times what it cost once settled (plus the estimate)
/// grew costly by itself.
const GROWTH: f64 = 2.0;
/// The time constant of the pool's per-stream cost average, in seconds.
pub const COST_TAU_S: f64 = 1.0;

/// The pool's capacity for admission.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// Cores of inspection the pool may fill.
    pub cores: f64,
    /// What a new stream is assumed to cost until its own cost is known.
    pub estimate: f64,
    /// A stream's cost budget (`inspect.max_stream_cost`): what costs more is served after the
    /// others and late on its own, so it takes no more than this of the capacity, and tells
    /// nothing of what a newcomer will cost.
    pub budget: f64,
}

/// What the pool carries now.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    /// Sum of the live streams' costs (a stream still warming up counted at what it is on its
    /// way to, at least what a newcomer is assumed to cost), plus the admissions not yet opened.
    pub cores: f64,
    /// What a newcomer is assumed to cost now: the estimate, or the most the newcomers of the
    /// last seconds turned out to cost if more (a burst of costly broadcasters is taken on at
    /// their cost, not at the estimate).
    pub newcomer: f64,
    /// The pool is short now (several streams late) or samples less than configured.
    pub short: bool,
}

/// How old a stream must be before its cost so far tells what it will be.
const PROJECTED_AFTER: Duration = Duration::from_millis(500);

impl Capacity {
    /// What the pool carries: its streams as (CPU cost, age since inspection first had video
    /// of it; zero before), the admissions not yet opened, and whether it is short now. (The
    /// workers' busy wall time is no measure here: on a shared machine it counts the time other
    /// processes took, and two streams built to be costly would lock every newcomer out.)
    pub fn load(&self, streams: &[(f64, Duration)], waiting: usize, short: bool) -> Load {
        let recent = streams
            .iter()
            .filter(|(_, age)| (PROJECTED_AFTER..WARMUP).contains(age))
            .map(|&(cost, age)| self.projected(cost, age))
            .filter(|&cost| cost <= self.budget)
            .fold(0.0, f64::max);
        let newcomer = self.estimate.max(recent);
        let counted: f64 = streams
            .iter()
            .map(|&(cost, age)| self.counted(cost, age, newcomer).min(self.budget))
            .sum();
        Load {
            cores: counted + waiting as f64 * newcomer,
            newcomer,
            short,
        }
    }

    /// Whether one more stream may be taken on; the refusal says why.
    pub fn admit(&self, load: Load) -> Result<(), String> {
        if load.short {
            return Err("at capacity: inspection is already short of time".into());
        }
        if load.cores + load.newcomer > self.cores {
            return Err(format!(
                "at capacity: inspection is using {:.2} of {:.2} cores",
                load.cores, self.cores
            ));
        }
        Ok(())
    }

    /// What a stream counts for in the load: its cost once warmed up; before, at least what a
    /// newcomer is assumed to cost, and what its cost so far says it will be.
    fn counted(&self, cost: f64, age: Duration, newcomer: f64) -> f64 {
        if age >= WARMUP {
            cost
        } else if age >= PROJECTED_AFTER {
            self.projected(cost, age).max(self.estimate)
        } else {
            cost.max(newcomer)
        }
    }

    /// What a young stream's cost is on its way to: the cost is an average over about a second
    /// that starts from nothing, so divided by how far it has come, it tells a costly newcomer
    /// within half a second.
    fn projected(&self, cost: f64, age: Duration) -> f64 {
        let secs = age.as_secs_f64().max(0.001);
        cost.max(cost / (1.0 - (-secs / COST_TAU_S).exp()))
    }

    /// An even share of the capacity among `streams`.
    pub fn share(&self, streams: usize) -> f64 {
        self.cores / streams.max(1) as f64
    }
}

/// What is known of one stream's cost and behaviour.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamLoad {
    /// Its cost now.
    pub cost: f64,
    /// Its cost once settled: the most it cost over its first half minute of video (`None`
    /// before).
    pub settled_cost: Option<f64>,
    /// Over the budget (`inspect.max_stream_cost`) lately.
    pub over_budget: bool,
    /// Its frames between keyframes look unlike its keyframes.
    pub evasive: bool,
    /// Inspected at full rate whatever the pool's level (a match, or evasive lately).
    pub exempt: bool,
}

impl StreamLoad {
    /// Whether the stream made itself costly: lost coverage under overload is its own doing.
    pub fn responsible(&self, estimate: f64) -> bool {
        self.over_budget
            || self.evasive
            || self
                .settled_cost
                .is_some_and(|was| self.cost > GROWTH * was + estimate)
    }

    /// The sampling level for this stream when the pool is at `pool_level`: lowered only for
    /// a stream that costs an even share or more, or made itself costly, and never for one
    /// inspected at full rate.
    pub fn level(&self, pool_level: u8, share: f64, estimate: f64) -> u8 {
        let heavy = self.cost >= 0.9 * share || self.responsible(estimate);
        if pool_level > 0 && heavy && !self.exempt {
            pool_level
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPACITY: Capacity = Capacity {
        cores: 1.6,
        estimate: 0.1,
        budget: 0.5,
    };

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_stream_is_taken_on_only_while_there_is_room() {
        let settled = |n: usize| vec![(0.125, secs(10.0)); n];
        let admit = |streams: &[(f64, Duration)], waiting, short| {
            CAPACITY.admit(CAPACITY.load(streams, waiting, short))
        };
        assert!(admit(&settled(11), 0, false).is_ok());
        let refused = admit(&settled(13), 0, false).expect_err("full");
        assert!(refused.contains("1.62 of 1.60"), "{refused}");
        // Admissions not opened yet hold their places.
        assert!(admit(&settled(11), 2, false).is_err());
        assert!(admit(&[], 0, true).is_err(), "short");
    }

    #[test]
    fn a_burst_of_costly_newcomers_is_taken_on_at_their_cost() {
        // A stream 0.6 s old whose average reached 0.1 is on its way to ~0.22; the newcomers
        // behind it, too young to tell, are assumed to cost as much.
        let burst = [(0.1, secs(0.6)), (0.02, secs(0.3)), (0.01, secs(0.1))];
        let load = CAPACITY.load(&burst, 0, false);
        assert!((0.21..0.23).contains(&load.newcomer), "{load:?}");
        assert!((0.63..0.69).contains(&load.cores), "{load:?}");
        // Cheap newcomers are assumed at the estimate.
        let cheap = CAPACITY.load(&[(0.01, secs(0.7)), (0.0, secs(0.2))], 0, false);
        assert_eq!(cheap.newcomer, 0.1);
        // Warmed up, a stream counts its own cost.
        let warm = CAPACITY.load(&[(0.02, secs(6.0))], 0, false);
        assert!((warm.cores - 0.02).abs() < 1e-9);
        // Streams built to be costly (over the budget) count the budget, and say nothing of
        // what the next broadcaster will cost: they cannot lock newcomers out.
        let costly = CAPACITY.load(&[(0.7, secs(1.0)), (0.9, secs(2.0))], 0, false);
        assert_eq!(costly.newcomer, 0.1);
        assert!((costly.cores - 1.0).abs() < 1e-9, "{costly:?}");
        assert!(CAPACITY.admit(costly).is_ok());
    }

    #[test]
    fn only_heavy_or_self_made_costly_streams_sample_less() {
        let share = CAPACITY.share(8);
        let cheap = StreamLoad {
            cost: 0.05,
            settled_cost: Some(0.05),
            ..StreamLoad::default()
        };
        assert_eq!(
            cheap.level(1, share, 0.1),
            0,
            "a cheap stream keeps its sampling"
        );
        let heavy = StreamLoad {
            cost: 0.3,
            settled_cost: Some(0.3),
            ..StreamLoad::default()
        };
        assert_eq!(heavy.level(1, share, 0.1), 1);
        assert!(
            !heavy.responsible(0.1),
            "heavy from the start is not self-made"
        );
        let exempt = StreamLoad {
            exempt: true,
            ..heavy
        };
        assert_eq!(exempt.level(2, share, 0.1), 0);
        assert_eq!(heavy.level(0, share, 0.1), 0, "the pool is not short");
    }

    #[test]
    fn costly_by_its_own_doing() {
        let grew = StreamLoad {
            cost: 0.35,
            settled_cost: Some(0.05),
            ..StreamLoad::default()
        };
        assert!(grew.responsible(0.1), "from 360p to 1080p after admission");
        let steady = StreamLoad {
            cost: 0.2,
            settled_cost: Some(0.15),
            ..StreamLoad::default()
        };
        assert!(!steady.responsible(0.1));
        for s in [
            StreamLoad {
                over_budget: true,
                ..steady
            },
            StreamLoad {
                evasive: true,
                ..steady
            },
        ] {
            assert!(s.responsible(0.1));
        }
    }
}
