//! What `fit` does differently when it trains data-parallel over a group of ranks
//! (see `crate::distributed`): every rank takes its share of each batch, and every
//! decision (stop, diverged, the logs callbacks see) is taken from sums over ranks, so
//! all ranks run the same steps and the same collectives.

use super::batch::Rows;
use crate::autograd::ParamStore;
use crate::distributed::{fingerprint, share, DataParallel};
use crate::error::{Error, Result};

impl<'a> Rows<'a> {
    /// This rank's consecutive part of these rows (of a data set of `total` rows).
    pub(crate) fn share_of(self, total: usize, rank: usize, size: usize) -> Rows<'a> {
        let part = share(self.len(total), rank, size);
        match self {
            Rows::All => Rows::Span(part.start, part.end),
            Rows::Span(a, _) => Rows::Span(a + part.start, a + part.end),
            Rows::Pick(idx) => Rows::Pick(&idx[part]),
        }
    }
}

/// Checks that every rank is about to train the same thing: `what` (settings that must
/// agree, in words) and the weights' layout and bits. Names the first rank that differs.
pub(crate) fn check_ranks_agree(dp: &mut DataParallel, store: &ParamStore, what: &str) -> Result<()> {
    let mine = format!("{what}; {}", fingerprint(store));
    let all = dp.comm.gather_all(mine.as_bytes());
    let first = String::from_utf8_lossy(&all[0]).into_owned();
    for (rank, theirs) in all.iter().enumerate().skip(1) {
        let theirs = String::from_utf8_lossy(theirs);
        if theirs != first {
            return Err(Error::Config(format!(
                "data-parallel ranks disagree before training: rank 0 has {first}, rank {rank} has {theirs} (every rank must read the same experiment and data)"
            )));
        }
    }
    Ok(())
}

/// Checks that training left every rank with the same weights (they never travel, so
/// this is what shows that every rank took the same steps).
pub(crate) fn check_weights_agree(dp: &mut DataParallel, store: &ParamStore) -> Result<()> {
    let mine = fingerprint(store);
    let all = dp.comm.gather_all(mine.as_bytes());
    match all.iter().position(|w| w != &all[0]) {
        None => Ok(()),
        Some(rank) => Err(Error::State(format!(
            "data-parallel ranks ended with different weights: rank 0 has {}, rank {rank} has {}",
            String::from_utf8_lossy(&all[0]),
            String::from_utf8_lossy(&all[rank])
        ))),
    }
}

/// Averages the non-trainable state over ranks (normalization layers' moving
/// statistics, which each rank updates from its own rows), in f64, so state that every
/// rank holds alike stays exactly as it is.
pub(crate) fn average_frozen_state(dp: &mut DataParallel, store: &mut ParamStore) {
    let ranges: Vec<_> = store.entries().iter().filter(|e| !e.trainable).map(|e| e.range()).collect();
    if ranges.is_empty() {
        return;
    }
    let mut values: Vec<f64> = ranges.iter().flat_map(|r| store.values()[r.clone()].iter().map(|&v| v as f64).collect::<Vec<_>>()).collect();
    dp.comm.sum(&mut values);
    let n = dp.size() as f64;
    let all = store.values_mut();
    let mut at = 0;
    for r in ranges {
        for v in &mut all[r] {
            *v = (values[at] / n) as f32;
            at += 1;
        }
    }
}
